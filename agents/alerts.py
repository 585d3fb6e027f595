"""The alert agent: the alert topics, consumed on the worker's event loop.

Each batch fetched is handed to ``Runtime.alerts.handle``, which returns only
when the batch is durably stored or dead-lettered (and holds the volume path
back meanwhile). Positions are kept in PostgreSQL with the rows, and every
assignment seeks to them; Kafka commits serve lag monitoring only, at most
once a second, so no alert waits behind one.

The consumer runs on the same event loop as the handler, like the volume
path's. Under a telemetry flood on two cores, the same alerts handed over
from a consumer on a thread of its own (as Faust's Kafka driver runs it)
reached Redis at twice the median latency (docs/benchmarks.md, "Alert path on
the worker's event loop").
"""

from __future__ import annotations

from collections.abc import Sequence

from pipeline import metrics
from pipeline.clients.kafka import ALERT_TOPICS, make_consumer
from pipeline.runtime.root import Runtime
from pipeline.sources.kafka_batch import BatchConsumer
from schemas.records import RawRecord

#: a fetch returns as soon as a record is in; this only bounds how often an
#: idle agent wakes up, and how long a stop waits for it
IDLE_POLL_MS = 500
#: Kafka commits of the alert group, for lag monitoring only
COMMIT_EVERY_S = 1.0
#: after this long without an alert, fetches wait as long as the volume path's
#: (Settings.idle_fetch_wait_ms) until alerts arrive again: on the embedded
#: broker, polling every 5 ms kept 0.36 cores of two (the alert process's and
#: the broker's) busy doing nothing
IDLE_AFTER_S = 1.0


def alert_agent(runtime: Runtime) -> BatchConsumer:
    s = runtime.settings

    async def handle(records: Sequence[RawRecord]) -> None:
        metrics.BATCH_SIZE.labels("alerts").observe(len(records))
        await runtime.alerts.handle(records)

    return BatchConsumer(
        make_consumer(s, s.kafka.alerts_group),
        ALERT_TOPICS,
        handle,
        runtime.alert_store.load_offsets,
        max_records=s.batch.alerts_max_records,
        linger_ms=IDLE_POLL_MS,
        name="alerts",
        assignment=runtime.alert_assignment,
        commit_every_s=COMMIT_EVERY_S,
        idle_fetch=(s.idle_fetch_wait_ms, IDLE_AFTER_S),
    )
