"""One frozen settings object, read from the environment at the entry point.

Prefix ``ERIOP_``, nested with ``__``: ``alarm.open_close_as_alerts`` is
``ERIOP_ALARM__OPEN_CLOSE_AS_ALERTS``. Secrets are ``SecretStr`` and never printed.
Pieces are handed down: a decoder gets ``settings.alarm``, not the whole object.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.canonical import GeoPoint


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AlarmAccount(_Frozen):
    """``alarm.accounts["<acct>"]`` or ``["L<line>#<acct>"]``."""

    key: SecretStr | None = None
    site: str | None = None
    location: GeoPoint | None = None
    address: dict[str, Any] | None = None

    @field_validator("key")
    @classmethod
    def _key_is_aes(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return v
        raw = v.get_secret_value()
        try:
            size = len(bytes.fromhex(raw))
        except ValueError:
            raise ValueError("alarm key must be hex") from None
        if size not in (16, 24, 32):
            raise ValueError("alarm key must be 16, 24 or 32 bytes (AES-128/192/256)")
        return v


class AlarmSettings(_Frozen):
    accounts: dict[str, AlarmAccount] = Field(default_factory=dict)
    open_close_as_alerts: bool = False


class AxisInput(_Frozen):
    type: str
    severity: int = Field(ge=1, le=5)
    label: str


class AxisSettings(_Frozen):
    max_event_age_s: float = 600.0
    rearm_window_s: float = 10.0
    inputs: dict[str, AxisInput] = Field(default_factory=dict)
    resource_cache_s: int = 300


class CapSettings(_Frozen):
    languages: tuple[str, ...] = ("en-US", "en")
    accept_exercise: bool = False


class TelemetrySettings(_Frozen):
    max_age_s: float = 7 * 86400.0
    max_future_s: float = 300.0


class GpsSettings(_Frozen):
    max_age_s: float = 7 * 86400.0
    max_future_s: float = 30.0
    max_accuracy_m: float = 100.0
    max_hdop: float = 5.0
    min_satellites: int = 4
    max_speed_personnel_mps: float = 12.0
    max_speed_vehicle_mps: float = 70.0
    #: at most one eriop.locations message per resource per this many seconds
    publish_interval_s: float = 1.0


class KafkaSettings(_Frozen):
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    #: on for Apache Kafka; the embedded development broker refuses it
    idempotence: bool = True
    partitions: int = 4
    replication_factor: int = 1
    #: how long a fetch may wait for data; the embedded broker answers a waiting
    #: fetch late (up to about a quarter of the wait after data arrives), so it
    #: is kept short there (see ``effective_fetch_wait_ms``)
    fetch_max_wait_ms: int | None = None
    alerts_group: str = "eriop-alerts"
    bulk_group: str = "eriop-bulk"


class BatchSettings(_Frozen):
    telemetry_max_records: int = 5000
    gps_max_records: int = 2000
    alerts_max_records: int = 200
    #: how long the alert agent waits to fill a batch, in ms (adds to latency)
    alert_linger_ms: int = 2
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
    #: metrics and health, and the worker's pid
    port: int = 0
    parent_pid: int = 0

    def process_count(self, partitions: int) -> int:
        return self.processes or max(1, min(os.cpu_count() or 1, partitions))


class Settings(BaseSettings):
    """Everything the worker and the CLI read from the environment."""

    model_config = SettingsConfigDict(
        env_prefix="ERIOP_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    kafka_bootstrap: str = "localhost:9092"
    database_url: SecretStr = SecretStr("postgresql://localhost/eriop")
    redis_url: SecretStr = SecretStr("redis://localhost:6379/0")
    metrics_port: int = 9108
    health_port: int | None = None  # None: served on the metrics port
    max_message_bytes: int = 1_048_576
    shutdown_timeout_s: float = 15.0
    #: how often geofences and jurisdictions are checked for changes
    geo_refresh_s: float = 30.0
    #: how often the retention job archives and drops expired data
    retention_interval_s: float = 3600.0
    embedded_broker: bool = False
    #: run even when PostgreSQL has fsync or synchronous_commit off (never in production)
    allow_unsafe_database: bool = False

    kafka: KafkaSettings = KafkaSettings()

    @property
    def effective_fetch_wait_ms(self) -> int:
        if self.kafka.fetch_max_wait_ms is not None:
            return self.kafka.fetch_max_wait_ms
        return 5 if self.embedded_broker else 500

    batch: BatchSettings = BatchSettings()
    bulk: BulkSettings = BulkSettings()
    alarm: AlarmSettings = AlarmSettings()
    axis: AxisSettings = AxisSettings()
    cap: CapSettings = CapSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    gps: GpsSettings = GpsSettings()
