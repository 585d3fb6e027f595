"""``alerts.axis``: events of Axis cameras and audio sensors via their MQTT
bridge (docs/formats.md 2).

:func:`parse_axis` validates one message into an :class:`AxisEvent`;
:func:`build_alert` makes the alert of a rising edge, placed at the registered
device (2.4). The edges themselves are found by
:class:`pipeline.stages.axis_edges.AxisEdgeTracker`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pydantic

from pipeline.decoders.alert_meta import MAX_DESCRIPTION, MAX_TITLE, pipeline_metadata
from pipeline.decoders.axis.event import AxisEvent, scalar_text
from pipeline.decoders.axis.mapping import AxisMapping
from pipeline.decoders.envelope import cut, from_pydantic
from schemas.canonical import CanonicalAlert, DeviceInfo, GeoPoint


def _max_spl(data: dict[str, Any]) -> float | None:
    for key, value in data.items():
        if key.lower() == "maxspl" and not isinstance(value, bool):
            try:
                number = float(value)
            except (TypeError, ValueError):
                return None  # a bad reading never blocks the alert
            return number if math.isfinite(number) else None
    return None


def _describe(event: AxisEvent) -> str:
    data = ", ".join(f"{k}={scalar_text(v)}" for k, v in event.data.items())
    return f"Topic: {event.topic}\nSource: {event.source_text}\nData: {data}"


def build_alert(
    event: AxisEvent, mapping: AxisMapping, devices: Sequence[DeviceInfo], now: datetime
) -> CanonicalAlert:
    """The alert row for a triggering event, placed at its registered device."""
    metadata = pipeline_metadata(event.ingest, event.occurred_at, event.received_at)
    metadata.update(
        device_serial=event.serial,
        resource_id=None,
        axis={
            "topic": event.topic,
            "path": event.path,
            "source": dict(event.source),
            "data": dict(event.data),
        },
        match_key=event.match_key,
    )
    spl = _max_spl(dict(event.data))
    if spl is not None:
        metadata["max_spl_db"] = spl
    location: GeoPoint | None = None
    name = event.serial
    if not devices:
        # Never drop an alarm for missing inventory: store it unplaced.
        metadata["device_unregistered"] = True
    else:
        device = max(devices, key=lambda d: d.updated_at)
        if len(devices) > 1:
            metadata["ambiguous_device"] = True
        metadata["resource_id"] = str(device.resource_id)
        if device.agency_id is not None:
            # the device's own agency wins over the jurisdiction its location falls in
            metadata["agency"] = {"id": str(device.agency_id), "source": "resource"}
        location = device.location
        name = device.name or event.serial
    try:
        return CanonicalAlert(
            source=mapping.source,
            external_id=event.external_id,
            type=mapping.type,
            severity=mapping.severity,
            title=cut(f"{mapping.label} - {name}", MAX_TITLE),
            description=cut(_describe(event), MAX_DESCRIPTION),
            location=location,
            raw_payload=dict(event.payload),
            metadata=metadata,
            received_at=event.received_at,
            processed_at=now,
        )
    except pydantic.ValidationError as exc:
        raise from_pydantic(exc, "axis") from None
