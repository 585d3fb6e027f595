"""Every Prometheus metric the worker exports, declared in one place.

Labels are bounded sets: ``topic`` (the six inbound topics), ``stage``,
``outcome``, ``error_code`` (docs/formats.md 7), ``sink``, ``channel``.
Never an id. Intentional drops (duplicates, discards) are counted apart from
failures, so that per topic::

    consumed = stored + duplicate + dead_lettered + skipped

holds (``eriop_records_total`` by ``outcome``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

REGISTRY: Final = CollectorRegistry(auto_describe=True)
# process_* (CPU, memory, file descriptors) and python_info, like the default registry
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

OUTCOMES: Final = ("stored", "duplicate", "dead_lettered", "skipped")

_LATENCY_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
_DB_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BATCH_BUCKETS: Final = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)

BULK_YIELD_SECONDS: Final = Counter(
    "eriop_bulk_yield_seconds_total",
    "Seconds the telemetry/GPS path held back because the alert path had alerts in hand.",
    registry=REGISTRY,
)
RECORDS_CONSUMED: Final = Counter(
    "eriop_records_consumed_total",
    "Kafka records taken from an inbound topic.",
    ["topic"],
    registry=REGISTRY,
)
RECORDS: Final = Counter(
    "eriop_records_total",
    "Kafka records by final outcome: stored, duplicate, dead_lettered or skipped.",
    ["topic", "outcome"],
    registry=REGISTRY,
)
DEAD_LETTERS: Final = Counter(
    "eriop_dead_letters_total",
    "Records sent to eriop.dlq, by stage and error code.",
    ["topic", "stage", "error_code"],
    registry=REGISTRY,
)
SKIPPED: Final = Counter(
    "eriop_skipped_total",
    "Records dropped on purpose (tombstones, void fixes, CAP exercises, ...), by reason.",
    ["topic", "reason"],
    registry=REGISTRY,
)
ROWS_WRITTEN: Final = Counter(
    "eriop_rows_written_total",
    "Rows inserted into PostgreSQL, by table.",
    ["table"],
    registry=REGISTRY,
)
ROWS_DUPLICATE: Final = Counter(
    "eriop_rows_duplicate_total",
    "Rows not inserted because their idempotency key was already stored, by table.",
    ["table"],
    registry=REGISTRY,
)
ALERT_PATCHES: Final = Counter(
    "eriop_alert_patches_total",
    "Changes applied to existing alerts (restore, cancel, ...), by kind and result.",
    ["kind", "result"],
    registry=REGISTRY,
)
END_TO_END_LATENCY: Final = Histogram(
    "eriop_end_to_end_latency_seconds",
    "Time from the Kafka record timestamp (receive) or the event time (event) to commit.",
    ["stream", "clock"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
BATCH_SIZE: Final = Histogram(
    "eriop_batch_size_records",
    "Records per processed batch.",
    ["stream"],
    buckets=_BATCH_BUCKETS,
    registry=REGISTRY,
)
DB_WRITE_SECONDS: Final = Histogram(
    "eriop_db_write_seconds",
    "Duration of one database write transaction.",
    ["stream"],
    buckets=_DB_BUCKETS,
    registry=REGISTRY,
)
DB_ERRORS: Final = Counter(
    "eriop_db_errors_total",
    "Database operations that failed, by stream and error code.",
    ["stream", "error_code"],
    registry=REGISTRY,
)
REDIS_PUBLISH: Final = Counter(
    "eriop_redis_publish_total",
    "Redis publishes and writes, by channel/structure and result.",
    ["channel", "result"],
    registry=REGISTRY,
)
OUTBOX_PENDING: Final = Gauge(
    "eriop_outbox_pending",
    "Stored alerts not yet published to Redis and alerts.normalized.",
    registry=REGISTRY,
)
CONSUMER_LAG: Final = Gauge(
    "eriop_consumer_lag_records",
    "Records between the consumer's position and the end of the partition.",
    ["topic", "partition"],
    registry=REGISTRY,
)
CONSUMER_PAUSED: Final = Gauge(
    "eriop_consumer_paused",
    "1 while a consumer is paused waiting for a dependency.",
    ["stream"],
    registry=REGISTRY,
)
DEPENDENCY_UP: Final = Gauge(
    "eriop_dependency_up",
    "1 when the last health check of a dependency succeeded.",
    ["dependency"],
    registry=REGISTRY,
)
BULK_RESTARTS: Final = Counter(
    "eriop_bulk_process_restarts_total",
    "Times the worker restarted its telemetry/GPS process after it exited.",
    registry=REGISTRY,
)
WORKER_UP: Final = Gauge("eriop_worker_up", "1 while the worker is running.", registry=REGISTRY)
BUILD_INFO: Final = Info("eriop_build", "Version of the running worker.", registry=REGISTRY)
GEOFENCE_EVENTS: Final = Counter(
    "eriop_geofence_events_total",
    "Geofence enter/leave events published.",
    ["transition"],
    registry=REGISTRY,
)
LOCATION_FLAGS: Final = Counter(
    "eriop_location_flags_total",
    "Fixes stored with a plausibility flag, by flag.",
    ["flag"],
    registry=REGISTRY,
)
DC09_LENGTH_MISMATCH: Final = Counter(
    "eriop_dc09_length_mismatch_total",
    "DC-09 frames whose length field matched neither hex nor decimal body length.",
    registry=REGISTRY,
)
DEVICE_UNREGISTERED: Final = Counter(
    "eriop_device_unregistered_total",
    "Axis alerts stored without a matching resource row.",
    registry=REGISTRY,
)
RETENTION_ROWS: Final = Counter(
    "eriop_retention_rows_total",
    "Rows archived or dropped by the retention job, by table and action.",
    ["table", "action"],
    registry=REGISTRY,
)


SUPERVISION_ACCOUNTS_FAILED: Final = Gauge(
    "eriop_supervision_accounts_failed",
    "Alarm accounts in communication failure now (state shared by every receiver).",
    registry=REGISTRY,
)
SUPERVISION_CHANGES: Final = Counter(
    "eriop_supervision_changes_total",
    "Line supervision changes this receiver delivered, by state (failed, restored).",
    ["state"],
    registry=REGISTRY,
)
SUPERVISION_ERRORS: Final = Counter(
    "eriop_supervision_errors_total",
    "Line supervision steps that failed and will be retried, by kind (database, kafka, redis).",
    ["kind"],
    registry=REGISTRY,
)
SUPERVISION_LAST_CHECK: Final = Gauge(
    "eriop_supervision_last_check_timestamp_seconds",
    "Unix time of the last completed supervision check (deadlines evaluated).",
    registry=REGISTRY,
)


CONSUMER_PARTITIONS: Final = Gauge(
    "eriop_consumer_partitions_assigned",
    "Partitions assigned to this worker's consumers, by consumer group.",
    ["group"],
    registry=REGISTRY,
)
CONSUMER_REBALANCING: Final = Gauge(
    "eriop_consumer_rebalancing",
    "1 from the moment a consumer group's partitions are revoked until they are assigned.",
    ["group"],
    registry=REGISTRY,
)
CONSUMER_REBALANCE_AGE: Final = Gauge(
    "eriop_consumer_rebalance_age_seconds",
    "Seconds since a consumer group's last completed rebalance (assignment).",
    ["group"],
    registry=REGISTRY,
)
LIVE_STATE_REFILLS: Final = Counter(
    "eriop_live_state_refills_total",
    "Times Redis was found empty (restart, failover, flush) and refilled from PostgreSQL.",
    registry=REGISTRY,
)


def initialize(
    *,
    topics: Sequence[str],
    streams: Sequence[str],
    tables: Sequence[str],
    dead_letter_codes: Sequence[tuple[str, str]],
    partitions: int,
) -> None:
    """Create every core series of a process at 0 for its known label values, so
    rates and absence rules see the series from start, before any traffic.

    ``dead_letter_codes`` are (stage, error_code) pairs.
    """
    for topic in topics:
        RECORDS_CONSUMED.labels(topic)
        for outcome in OUTCOMES:
            RECORDS.labels(topic, outcome)
        for stage, code in dead_letter_codes:
            DEAD_LETTERS.labels(topic, stage, code)
        for partition in range(partitions):
            CONSUMER_LAG.labels(topic, str(partition))
    for stream in streams:
        END_TO_END_LATENCY.labels(stream, "receive")
        BATCH_SIZE.labels(stream)
        DB_WRITE_SECONDS.labels(stream)
    for table in tables:
        ROWS_WRITTEN.labels(table)
        ROWS_DUPLICATE.labels(table)


def observe_many(histogram: Histogram, amounts: Sequence[float] | np.ndarray) -> None:
    """``histogram.observe`` of every amount, with one increment per bucket.

    ``observe`` walks the bucket bounds in Python for each value; a batch of
    thousands of latencies is counted into buckets by numpy here instead.
    """
    if not len(amounts):
        return
    values = np.asarray(amounts, dtype=np.float64)
    # prometheus_client has no bulk observe; these are the fields observe() uses
    # (tests/unit/test_hot_path_helpers.py checks the two agree). A value's
    # bucket is the first bound not below it, as bisect_left finds it; a NaN,
    # above every bound for numpy, is clipped into the last (+Inf).
    bounds = histogram._upper_bounds
    where = np.minimum(np.searchsorted(bounds, values, side="left"), len(bounds) - 1)
    per_bucket = np.bincount(where, minlength=len(bounds))
    histogram._sum.inc(float(values.sum()))
    for i in np.flatnonzero(per_bucket).tolist():
        histogram._buckets[i].inc(int(per_bucket[i]))


def observe_ages(histogram: Histogram, now_ms: float, stamps_ms: Sequence[int]) -> None:
    """:func:`observe_many` of the seconds from each Kafka timestamp to ``now_ms``
    (none below zero: a producer's clock may run ahead)."""
    ages = np.asarray(stamps_ms, dtype=np.float64)
    observe_many(histogram, np.maximum(now_ms - ages, 0.0) / 1000.0)
