"""One frozen settings object, read from the environment at the entry point.

Prefix ``ERIOP_``, nested with ``__``: ``alarm.open_close_as_alerts`` is
``ERIOP_ALARM__OPEN_CLOSE_AS_ALERTS``. Secrets are ``SecretStr`` and never printed.
Pieces are handed down: a decoder gets ``settings.alarm``, not the whole object.
"""

from __future__ import annotations

import json
import os
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

# the front doors' settings live beside this module, importable from here too
from pipeline.settings_front_doors import CapFeedSettings as CapFeedSettings
from pipeline.settings_front_doors import CapSource as CapSource
from pipeline.settings_front_doors import MqttSettings as MqttSettings
from pipeline.settings_front_doors import ReceiverSettings as ReceiverSettings
from schemas.canonical import GeoPoint


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AlarmAccount(_Frozen):
    """``alarm.accounts["<acct>"]`` or ``["L<line>#<acct>"]``."""

    key: SecretStr | None = None
    site: str | None = None
    location: GeoPoint | None = None
    address: dict[str, Any] | None = None
    #: line supervision: the longest silence expected from this account, in
    #: seconds (None: ``alarm.checkin_interval_s``; 0: not supervised)
    checkin_interval_s: float | None = Field(default=None, ge=0)

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


def read_accounts_file(path: str) -> dict[str, AlarmAccount]:
    """A JSON object of accounts (the shape of ``alarm.accounts``).

    Raises ValueError naming the file and the entries at fault, never a value:
    a rejected value may be a key.
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise ValueError(f"accounts file {path} cannot be read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"accounts file {path} is not JSON (line {exc.lineno})") from None
    try:
        return _ACCOUNTS.validate_python(data)
    except PydanticValidationError as exc:
        where = sorted({".".join(map(str, e["loc"])) for e in exc.errors(include_input=False)})
        entries = ", ".join(where)
        raise ValueError(f"accounts file {path} has invalid entries at {entries}") from None


_ACCOUNTS: TypeAdapter[dict[str, AlarmAccount]] = TypeAdapter(dict[str, AlarmAccount])


class AlarmSettings(_Frozen):
    accounts: dict[str, AlarmAccount] = Field(default_factory=dict)
    #: a JSON file of more accounts and keys (the shape of ``accounts``), whose
    #: entries win; read at start, and again by the DC-09 receiver on SIGHUP and
    #: whenever the file changes
    accounts_file: str | None = None
    _env_accounts: dict[str, AlarmAccount] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _merge_accounts_file(self) -> AlarmSettings:
        self._env_accounts = dict(self.accounts)
        if self.accounts_file is not None:
            merged = {**self.accounts, **read_accounts_file(self.accounts_file)}
            object.__setattr__(self, "accounts", merged)  # still frozen to everyone else
        return self

    @property
    def env_accounts(self) -> dict[str, AlarmAccount]:
        """``accounts`` as the environment gave them, without the file's."""
        return self._env_accounts

    open_close_as_alerts: bool = False
    #: line supervision (docs/operations.md): an account silent for its interval
    #: plus the grace is in communication failure; 0 turns supervision off
    checkin_interval_s: float = Field(default=1800.0, ge=0)
    checkin_grace_s: float = Field(default=120.0, ge=0)
    #: how often check-ins are written and deadlines checked
    supervision_tick_s: float = Field(default=1.0, gt=0)


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
    #: set by the worker for its child: the child's static group membership
    #: (``<host>-bulk-<n>``), so a restarted child takes its own place back
    instance_id: str = ""

    def process_count(self, partitions: int) -> int:
        return self.processes or max(1, min(os.cpu_count() or 1, partitions))


#: where secret files are read from, when the directory exists
SECRETS_DIR = "/run/secrets"


class Settings(BaseSettings):
    """Everything the worker and the CLI read from the environment."""

    model_config = SettingsConfigDict(
        env_prefix="ERIOP_",
        env_nested_delimiter="__",
        frozen=True,
        # unknown ERIOP_* variables are caught, with the closest valid name, by
        # pipeline.environment.load_settings before this model reads them
        extra="ignore",
        # secrets as files named like their variable, in lower case
        # (/run/secrets/eriop_database_url, eriop_kafka__sasl_password)
        secrets_dir=SECRETS_DIR,
        secrets_dir_missing="ok",
        secrets_nested_delimiter="__",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # the environment wins over a secret file; nested secrets by file name
        secrets = NestedSecretsSettingsSource(file_secret_settings)
        return init_settings, env_settings, dotenv_settings, secrets

    #: Kafka bootstrap servers (host:port, comma-separated)
    kafka_bootstrap: str = "localhost:9092"
    #: PostgreSQL DSN, ``postgresql://user:password@host:port/database``
    database_url: SecretStr = SecretStr("postgresql://localhost/eriop")
    #: Redis URL; ``rediss://`` for TLS, the password in the URL for AUTH
    redis_url: SecretStr = SecretStr("redis://localhost:6379/0")
    #: /metrics, /livez, /readyz and /health of the worker
    metrics_port: int = 9108
    #: the address they listen on ("127.0.0.1" to keep them on this host)
    metrics_host: str = "0.0.0.0"  # noqa: S104 - scraped by Prometheus from other hosts
    #: larger Kafka values are dead-lettered as ``oversize``
    max_message_bytes: int = 1_048_576
    #: how long a graceful stop may take before the process exits anyway
    shutdown_timeout_s: float = 15.0
    #: how often geofences and jurisdictions are checked for changes
    geo_refresh_s: float = 30.0
    #: how often the retention job archives and drops expired data
    retention_interval_s: float = 3600.0
    #: short group timeouts and fetch waits for the embedded development broker
    embedded_broker: bool = False
    #: run even when PostgreSQL has fsync or synchronous_commit off (never in production)
    allow_unsafe_database: bool = False
    #: every process's log level (``--log-level`` overrides it)
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    #: ``text`` for people, ``json`` (one object per line) for log collectors
    log_format: Literal["text", "json"] = "text"

    #: Kafka clients: security, partitions, consumer groups
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
    mqtt: MqttSettings = MqttSettings()
    cap_feeds: CapFeedSettings = CapFeedSettings()
    receiver: ReceiverSettings = ReceiverSettings()
