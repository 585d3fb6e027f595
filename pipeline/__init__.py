"""ERIOP ingest: the pipeline, laid out in the order a record travels.

::

    front doors (sources/)            Kafka topics          the worker
    DC-09 panels ─► sources.dc09 ─┐
    Axis MQTT   ─► sources.mqtt ──┼─► alerts.* ─► sources.kafka_batch (agents: alerts)
    CAP feeds   ─► sources.cap_feed┘  telemetry.raw, gps.raw      │
                                                                  ▼
      decoders/<family>  bytes ─► validated, normalised intents (pure)
            │
      stages/            enrich (geo_index), resolve, plausibility, geofence, axis_edges
            │
      flows/             per stream: retry, bisect, dead letters, accounting
            │
      sinks/             postgres/ (rows, offsets) · redis/ (live state) · kafka/ (DLQ)
                         · outbox (Redis and alerts.normalized after commit)

      clients/   Kafka and PostgreSQL connections    store/    migrations, retention
      runtime/   composition root, child processes, the HTTP server for metrics and health
      errors, settings, metrics, retry: shared by all of the above

Where to put a new ...

- **source** (a front door, a consumer): ``sources/<name>/``; it produces to a topic
  and acknowledges its sender only after Kafka acknowledged it.
- **decoder** (a new inbound format): ``decoders/<family>/``; pure functions from a
  ``RawRecord`` to intents, raising the input errors of :mod:`pipeline.errors`;
  no I/O library.
- **stage** (a lookup or a check between decoding and storing): ``stages/``.
- **sink** (a place results go): ``sinks/<service>/``; it translates its
  library's errors into :mod:`pipeline.errors`.
- **setting**: :mod:`pipeline.settings`; **metric**: :mod:`pipeline.metrics`;
  **retry loop**: :mod:`pipeline.retry`.

The layers only import downwards (runtime > flows > stages > sinks, sources,
store > clients > decoders > errors, settings, metrics, retry), nothing here
imports ``agents`` or the ``eriop`` command line, and the I/O libraries
are imported only by the adapters (clients, sources, sinks, store, runtime):
import-linter checks all of it (``pyproject.toml``).
"""

__version__ = "0.1.0"

# before any other module of the package: compiled modules load only while fresh
from pipeline import compiled as _compiled

_compiled.install()
