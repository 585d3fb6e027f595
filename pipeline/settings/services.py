"""Settings of the services and of the worker's own processes: Kafka, batches, bulk processes."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, SecretStr

from pipeline.settings.base import Frozen as _Frozen


class KafkaSettings(_Frozen):
    #: how clients reach Kafka
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    #: SASL mechanism (default PLAIN when SASL is used)
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    #: SASL user
    sasl_username: str | None = None
    #: SASL password
    sasl_password: SecretStr | None = None
    #: CA bundle that signs the brokers' certificates
    ssl_cafile: str | None = None
    #: client certificate (mutual TLS)
    ssl_certfile: str | None = None
    #: client certificate's key
    ssl_keyfile: str | None = None
    #: on for Apache Kafka; the embedded development broker refuses it
    idempotence: bool = True
    #: partitions of the topics the worker creates
    partitions: int = 4
    #: replication factor of the topics the worker creates
    replication_factor: int = 1
    #: how long a fetch may wait for data; the embedded broker answers a waiting
    #: fetch late (up to about a quarter of the wait after data arrives), so it
    #: is kept short there (see ``effective_fetch_wait_ms``)
    fetch_max_wait_ms: int | None = None
    #: consumer group of the alert path (its offsets are stored under this name)
    alerts_group: str = "eriop-alerts"
    #: consumer group of the telemetry/GPS path
    bulk_group: str = "eriop-bulk"


class BatchSettings(_Frozen):
    #: most telemetry records in one batch
    telemetry_max_records: int = 5000
    #: most GPS records in one batch
    gps_max_records: int = 2000
    #: most alert records in one batch
    alerts_max_records: int = 200
    #: how long a batch may wait to fill, in ms
    linger_ms: int = 50


class BulkSettings(_Frozen):
    #: run the telemetry and GPS path in a child process of the worker, so that
    #: decoding a flood never holds up the alert path's event loop
    process: bool = True
    #: how many such processes share the volume topics' partitions (one consumer
    #: group); 0: one per CPU, at most one per partition
    processes: int = Field(default=0, ge=0)
    #: how much lower the child's CPU priority is (0-19); alerts go first
    nice: int = Field(default=5, ge=0, le=19)
    #: set by the worker for its child: the loopback port of the child's
    #: metrics and health
    port: int = 0
    #: set by the worker for its child: the worker's pid
    parent_pid: int = 0
    #: set by the worker for its child: the child's static group membership
    #: (``<host>-bulk-<n>``), so a restarted child takes its own place back
    instance_id: str = ""
    #: set by the worker for its child: the inherited descriptor of the cell
    #: through which the alert path says it has alerts in hand (pipeline.priority)
    priority_fd: int = -1
    #: longest the volume path holds back per look (before a fetch, before a
    #: COPY, every yield_every_rows rows of it) while alerts are in hand, in ms;
    #: 0: never
    yield_max_ms: int = Field(default=200, ge=0, le=5000)
    #: most of any second the volume path spends holding back for alerts
    #: (0-1): an alert storm slows telemetry and GPS down, never stops them
    yield_max_share: float = Field(default=0.9, ge=0.0, le=1.0)
    #: rows a COPY sends between two looks at whether alerts are in hand
    yield_every_rows: int = Field(default=1000, ge=100)

    def process_count(self, partitions: int) -> int:
        return self.processes or max(1, min(os.cpu_count() or 1, partitions))
