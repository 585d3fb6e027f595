"""One frozen settings object, read from the environment at the entry point.

Prefix ``ERIOP_``, nested with ``__``: ``alarm.open_close_as_alerts`` is
``ERIOP_ALARM__OPEN_CLOSE_AS_ALERTS``. Secrets are ``SecretStr`` and never printed.
Pieces are handed down: a decoder gets ``settings.alarm``, not the whole object.
"""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

# the front doors' settings live beside this module, importable from here too
from pipeline.settings.front_doors import CapFeedSettings as CapFeedSettings
from pipeline.settings.front_doors import CapSource as CapSource
from pipeline.settings.front_doors import MqttSettings as MqttSettings
from pipeline.settings.front_doors import ReceiverSettings as ReceiverSettings
from pipeline.settings.inputs import AlarmAccount as AlarmAccount
from pipeline.settings.inputs import AlarmSettings as AlarmSettings
from pipeline.settings.inputs import AxisInput as AxisInput
from pipeline.settings.inputs import AxisSettings as AxisSettings
from pipeline.settings.inputs import CapSettings as CapSettings
from pipeline.settings.inputs import GpsSettings as GpsSettings
from pipeline.settings.inputs import TelemetrySettings as TelemetrySettings
from pipeline.settings.inputs import read_accounts_file as read_accounts_file
from pipeline.settings.services import BatchSettings as BatchSettings
from pipeline.settings.services import BulkSettings as BulkSettings
from pipeline.settings.services import KafkaSettings as KafkaSettings

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
    #: the address the worker's metrics and health pages listen on ("127.0.0.1" keeps
    #: them on this host)
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

    @property
    def idle_fetch_wait_ms(self) -> int:
        """The fetch wait of a consumer with nothing to do: polling an idle broker more
        often than a batch lingers only burns CPU on both sides."""
        return max(self.effective_fetch_wait_ms, self.batch.linger_ms)

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
