"""Metrics of the front doors (``eriop mqtt-bridge``, ``eriop cap-poller``,
``eriop dc09-receiver``), in the
one registry of :mod:`pipeline.metrics`. Labels: ``door`` (``mqtt``, ``cap``),
``broker`` (``mqtt``, ``kafka``), ``source`` (``mqtt`` or a configured CAP
source name, a bounded set), ``kind`` and ``reason`` (fixed sets of codes).
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

from pipeline.metrics import REGISTRY

FRONT_DOOR_FORWARDED: Final = Counter(
    "eriop_front_door_forwarded_total",
    "Messages a front door produced to Kafka (and then acknowledged to its sender).",
    ["door", "source"],
    registry=REGISTRY,
)
FRONT_DOOR_DISCARDED: Final = Counter(
    "eriop_front_door_discarded_total",
    "Messages a front door dropped on purpose (empty retained-clear, too large), by reason.",
    ["door", "reason"],
    registry=REGISTRY,
)
FRONT_DOOR_ERRORS: Final = Counter(
    "eriop_front_door_errors_total",
    "Front-door failures by kind (connect, timeout, http_status, oversize, malformed, kafka).",
    ["door", "source", "kind"],
    registry=REGISTRY,
)
FRONT_DOOR_CONNECTED: Final = Gauge(
    "eriop_front_door_connected",
    "1 while a front door is connected to a broker (mqtt, kafka).",
    ["door", "broker"],
    registry=REGISTRY,
)
MQTT_IN_FLIGHT: Final = Gauge(
    "eriop_mqtt_in_flight",
    "MQTT messages received by the bridge and not yet acknowledged to the broker.",
    registry=REGISTRY,
)
CAP_LAST_SUCCESS: Final = Gauge(
    "eriop_cap_last_success_timestamp_seconds",
    "Unix time of the last successful poll of a CAP source (start time before the first).",
    ["source"],
    registry=REGISTRY,
)
CAP_ALERT_AFTER: Final = Gauge(
    "eriop_cap_alert_after_seconds",
    "How long a CAP source may fail before EriopCapSourceFailing fires (configured).",
    ["source"],
    registry=REGISTRY,
)
RECEIVER_FRAMES: Final = Counter(
    "eriop_receiver_frames_total",
    "DC-09 frames read by the receiver, by transport (tcp, udp).",
    ["transport"],
    registry=REGISTRY,
)
RECEIVER_REPLIES: Final = Counter(
    "eriop_receiver_replies_total",
    "Answers to DC-09 frames: kind ACK, NAK, DUH or none (no answer: Kafka did not "
    "acknowledge in time, or the receiver was at capacity), by reason.",
    ["kind", "reason"],
    registry=REGISTRY,
)
RECEIVER_CONNECTIONS: Final = Gauge(
    "eriop_receiver_connections",
    "Open TCP connections from panels.",
    registry=REGISTRY,
)
RECEIVER_REFUSED: Final = Counter(
    "eriop_receiver_connections_refused_total",
    "TCP connections closed at once because a cap was reached (total, per_peer).",
    ["cap"],
    registry=REGISTRY,
)
RECEIVER_ACK_LATENCY: Final = Histogram(
    "eriop_receiver_ack_latency_seconds",
    "From a frame's last byte to its ACK (Kafka acknowledgement included).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
RECEIVER_KEY_RELOADS: Final = Counter(
    "eriop_receiver_key_reloads_total",
    "Reads of the receiver's accounts file, by result (ok, failed).",
    ["result"],
    registry=REGISTRY,
)
