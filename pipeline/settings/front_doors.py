"""Settings of the front doors (``eriop mqtt-bridge``, ``eriop cap-poller``,
``eriop dc09-receiver``).

Nested in :class:`pipeline.settings.Settings` as ``mqtt``, ``cap_feeds`` and
``receiver`` (``ERIOP_MQTT__HOST``, ``ERIOP_CAP_FEEDS__SOURCES``,
``ERIOP_RECEIVER__PORT``, ...); kept apart so that
module stays readable. Secrets are ``SecretStr``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from pipeline.settings.base import Frozen as _Frozen


class MqttSettings(_Frozen):
    """``eriop mqtt-bridge``: the MQTT broker the Axis devices publish to."""

    #: the MQTT broker the Axis devices publish to
    host: str = "localhost"
    #: its port (8883 is usual with TLS)
    port: int = Field(default=1883, ge=1, le=65535)
    #: topic filters; Axis devices publish events under ``axis/<SERIAL>/event/...``
    topics: tuple[str, ...] = ("axis/+/event/#",)
    #: must be stable (the broker keeps the persistent session under it) and unique
    #: per bridge; empty: ``eriop-bridge-<hostname>``
    client_id: str = ""
    #: MQTT user of the bridge
    username: str | None = None
    #: its password
    password: SecretStr | None = None
    #: connect with TLS
    tls: bool = False
    #: CA bundle that signs the broker's certificate
    tls_ca_file: str | None = None
    #: client certificate (mutual TLS)
    tls_cert_file: str | None = None
    #: client certificate's key
    tls_key_file: str | None = None
    #: several bridges with the same group share the load: each subscribes to
    #: ``$share/<group>/<filter>`` (MQTT 5 shared subscriptions)
    shared_group: str | None = None
    #: how long the broker keeps the session (and its queued messages) while the
    #: bridge is away
    session_expiry_s: int = Field(default=86400, ge=0)
    #: MQTT keep-alive interval
    keepalive_s: int = Field(default=30, ge=5)
    #: messages taken from the broker and not yet acknowledged to it: the Receive
    #: Maximum asked of the broker, and the bridge's own limit when a broker sends more
    max_in_flight: int = Field(default=100, ge=1)
    #: the bridge's /metrics, /livez, /readyz
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

    #: the CAP sources to follow: a JSON list of
    #: ``{"name", "url", "kind", "interval_s", "alert_after_s"}``
    sources: tuple[CapSource, ...] = ()
    #: the longest one HTTP request may take, body included
    timeout_s: float = Field(default=15.0, gt=0)
    #: a larger index or document is refused (and counted) without reading the rest
    max_bytes: int = Field(default=1_048_576, ge=1024)
    #: the User-Agent the poller sends
    user_agent: str = "eriop-cap-poller/0.1 (ERIOP ingest)"
    #: the first wait after a failed poll (jittered, doubling)
    retry_initial_s: float = Field(default=5.0, gt=0)
    #: the longest wait after failed polls
    retry_cap_s: float = Field(default=300.0, gt=0)
    #: entries gone from a feed for this long are forgotten
    forget_after_days: int = Field(default=30, ge=1)
    #: the poller's /metrics, /livez, /readyz
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
    #: open TCP connections (plus UDP frames in flight) in total
    max_connections: int = Field(default=5000, ge=1)
    #: open TCP connections from one peer address
    max_connections_per_peer: int = Field(default=500, ge=1)
    #: a frame stamped more than this many seconds before the receiver's clock is NAKed
    timestamp_past_s: float = Field(default=40.0, ge=0)
    #: a frame stamped more than this many seconds after the receiver's clock is NAKed
    timestamp_future_s: float = Field(default=20.0, ge=0)
    #: how often ``alarm.accounts_file`` is checked for changes (it is also read on SIGHUP)
    accounts_reload_s: float = Field(default=5.0, gt=0)
    #: the receiver's /metrics, /livez, /readyz
    metrics_port: int = 9111
