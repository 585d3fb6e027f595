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

    def process_count(self, partitions: int) -> int:
        return self.processes or max(1, min(os.cpu_count() or 1, partitions))


class MqttSettings(_Frozen):
    """``eriop mqtt-bridge``: the MQTT broker the Axis devices publish to."""

    host: str = "localhost"
    port: int = Field(default=1883, ge=1, le=65535)
    #: topic filters; Axis devices publish events under ``axis/<SERIAL>/event/...``
    topics: tuple[str, ...] = ("axis/+/event/#",)
    #: must be stable (the broker keeps the persistent session under it) and unique
    #: per bridge; empty: ``eriop-bridge-<hostname>``
    client_id: str = ""
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    #: several bridges with the same group share the load: each subscribes to
    #: ``$share/<group>/<filter>`` (MQTT 5 shared subscriptions)
    shared_group: str | None = None
    #: how long the broker keeps the session (and its queued messages) while the
    #: bridge is away
    session_expiry_s: int = Field(default=86400, ge=0)
    keepalive_s: int = Field(default=30, ge=5)
    #: messages received but not yet acknowledged to the broker
    max_in_flight: int = Field(default=100, ge=1)
    metrics_port: int = 9109

    @field_validator("topics")
    @classmethod
    def _filters(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v or any(not t.strip() or t.startswith("$share/") for t in v):
            raise ValueError("topics: one or more filters, without $share/ (use shared_group)")
        return v


class CapSource(_Frozen):
    """One CAP source: an Atom or RSS index of CAP entries, or one CAP document."""

    #: a short name: the metrics' ``source`` label and the key of its stored state
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    url: str = Field(pattern=r"^https?://")
    kind: Literal["auto", "atom", "rss", "document"] = "auto"
    interval_s: float = Field(default=60.0, ge=1.0)
    #: alert when no poll of this source has succeeded for this long;
    #: default: three intervals plus ten minutes
    alert_after_s: float | None = None

    @property
    def effective_alert_after_s(self) -> float:
        return self.alert_after_s or 3 * self.interval_s + 600.0


class CapFeedSettings(_Frozen):
    """``eriop cap-poller``: the CAP feeds to follow."""

    sources: tuple[CapSource, ...] = ()
    timeout_s: float = Field(default=15.0, gt=0)
    #: a larger index or document is refused (and counted) without reading the rest
    max_bytes: int = Field(default=1_048_576, ge=1024)
    user_agent: str = "eriop-cap-poller/0.1 (ERIOP ingest)"
    #: first and longest wait after a failed poll (jittered, doubling)
    retry_initial_s: float = Field(default=5.0, gt=0)
    retry_cap_s: float = Field(default=300.0, gt=0)
    #: entries gone from a feed for this long are forgotten
    forget_after_days: int = Field(default=30, ge=1)
    metrics_port: int = 9110

    @field_validator("sources")
    @classmethod
    def _unique(cls, v: tuple[CapSource, ...]) -> tuple[CapSource, ...]:
        names = [s.name for s in v]
        if len(set(names)) != len(names):
            raise ValueError("cap_feeds.sources: names must be unique")
        return v


class ReceiverSettings(_Frozen):
    """``eriop dc09-receiver``: the SIA DC-09 front door for alarm panels."""

    #: panels reach the receiver from other hosts: all interfaces by default
    host: str = "0.0.0.0"  # noqa: S104
    #: TCP and UDP listen on the same port number
    port: int = Field(default=9500, ge=0, le=65535)
    #: the envelope's ``receiver``: names this receiver in every alert it delivers
    receiver_id: str = Field(default="eriop-dc09", min_length=1, max_length=100)
    #: how long Kafka may take to acknowledge a frame; past it the panel gets no answer
    ack_timeout_s: float = Field(default=2.0, gt=0)
    #: a frame larger than this (LF to CR) is answered DUH
    max_frame_bytes: int = Field(default=4096, ge=64)
    #: a TCP connection silent for this long is closed
    idle_timeout_s: float = Field(default=60.0, gt=0)
    #: open TCP connections (plus UDP frames in flight), in total and per peer address
    max_connections: int = Field(default=5000, ge=1)
    max_connections_per_peer: int = Field(default=500, ge=1)
    #: a frame stamped more than this many seconds before / after the receiver's clock is NAKed
    timestamp_past_s: float = Field(default=40.0, ge=0)
    timestamp_future_s: float = Field(default=20.0, ge=0)
    #: how often ``alarm.accounts_file`` is checked for changes (it is also read on SIGHUP)
    accounts_reload_s: float = Field(default=5.0, gt=0)
    metrics_port: int = 9111


class Settings(BaseSettings):
    """Everything the worker and the CLI read from the environment."""

    model_config = SettingsConfigDict(
        env_prefix="ERIOP_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    kafka_bootstrap: str = "localhost:9092"
    database_url: SecretStr = SecretStr("postgresql://localhost/eriop")
    redis_url: SecretStr = SecretStr("redis://localhost:6379/0")
    #: /metrics, /livez, /readyz and /health of the worker
    metrics_port: int = 9108
    #: the address they listen on ("127.0.0.1" to keep them on this host)
    metrics_host: str = "0.0.0.0"  # noqa: S104 - scraped by Prometheus from other hosts
    max_message_bytes: int = 1_048_576
    shutdown_timeout_s: float = 15.0
    #: how often geofences and jurisdictions are checked for changes
    geo_refresh_s: float = 30.0
    #: how often the retention job archives and drops expired data
    retention_interval_s: float = 3600.0
    embedded_broker: bool = False
    #: run even when PostgreSQL has fsync or synchronous_commit off (never in production)
    allow_unsafe_database: bool = False
    #: every process's log level (``--log-level`` overrides it)
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"

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
