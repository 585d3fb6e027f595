"""``alerts.axis``: events of Axis cameras and audio sensors via their MQTT
bridge (docs/formats.md 2).

:func:`parse_axis` validates one message into an :class:`AxisEvent` (pure);
:class:`AxisEdgeTracker` turns events into alerts on rising edges and restores
on falling edges, from the last known state of each device item, and places
the alert at the registered device (2.4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol
from uuid import UUID

import pydantic

from pipeline.decoders.alert_meta import MAX_DESCRIPTION, MAX_TITLE, pipeline_metadata
from pipeline.decoders.axis.event import AxisEvent, device_ms, parse_axis, scalar_text
from pipeline.decoders.axis.mapping import AxisMapping
from pipeline.decoders.envelope import cut, from_pydantic, iso_utc
from pipeline.settings import AxisSettings
from schemas.canonical import CanonicalAlert, GeoPoint
from schemas.intents import Discard, Intent, PatchAlert, SetRedis, StoreAlert

__all__ = [
    "ALIVE_KEY_PREFIX",
    "AxisEdgeTracker",
    "AxisEvent",
    "AxisStateStore",
    "DeviceDirectory",
    "DeviceInfo",
    "device_ms",
    "parse_axis",
]

ALIVE_KEY_PREFIX: Final = "eriop:axis:alive:"


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A ``resources`` row of type ``equipment`` whose identifier is a serial."""

    resource_id: UUID
    name: str
    location: GeoPoint | None
    agency_id: UUID | None
    updated_at: datetime


class AxisStateStore(Protocol):
    """Last known state per device item: Redis hash ``eriop:axis:state:<serial>``,
    field ``<path>|<source>``, value ``<0|1>@<ts_ms>``."""

    async def get(self, serial: str, field: str) -> str | None: ...

    async def set(self, serial: str, field: str, value: str) -> None: ...


class DeviceDirectory(Protocol):
    """Equipment resources by identifier (case-insensitive), newest first or not."""

    async def equipment_by_identifier(self, serial: str) -> list[DeviceInfo]: ...


@dataclass(frozen=True, slots=True)
class KnownState:
    active: bool
    timestamp_ms: int

    def encode(self) -> str:
        return f"{int(self.active)}@{self.timestamp_ms}"

    @classmethod
    def decode(cls, raw: str | None) -> KnownState | None:
        """A stored value, or None when absent or unreadable (state unknown)."""
        if raw is None:
            return None
        flag, sep, ts = raw.partition("@")
        if not sep or flag not in ("0", "1"):
            return None
        try:
            return cls(flag == "1", int(ts))
        except ValueError:
            return None


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


class AxisEdgeTracker:
    """Edge detection of docs/formats.md 2.2 over a shared state store.

    The state is written before the intents are carried out; a redelivered
    message (same state and device timestamp) therefore repeats its intent,
    which the sinks absorb (a duplicate alert id, an idempotent restore).
    """

    def __init__(
        self, state: AxisStateStore, devices: DeviceDirectory, settings: AxisSettings
    ) -> None:
        self._state = state
        self._devices = devices
        self._rearm_ms = round(settings.rearm_window_s * 1000)

    async def intents(self, event: AxisEvent, now: datetime) -> list[Intent]:
        if event.connected is not None:
            value = KnownState(event.connected, event.timestamp_ms).encode()
            return [SetRedis(ALIVE_KEY_PREFIX + event.serial, value)]
        mapping = event.mapping
        if mapping is None:
            return [Discard("axis_unmapped_topic", {"path": event.path})]
        if event.state is None:
            # No state item: a momentary event, every message is an occurrence.
            if event.sync_only:
                return [Discard("axis_state_sync")]
            return [await self._store(event, mapping, now)]

        previous = KnownState.decode(await self._state.get(event.serial, event.state_field))
        if previous is not None and previous.timestamp_ms > event.timestamp_ms:
            return [Discard("axis_stale_event", {"stored_ms": previous.timestamp_ms})]
        current = KnownState(event.state, event.timestamp_ms)
        await self._state.set(event.serial, event.state_field, current.encode())
        if event.sync_only:
            return [Discard("axis_state_sync")]
        if mapping.stateless:
            if event.state:
                return [await self._store(event, mapping, now)]
            return [Discard("axis_state_unchanged")]
        if event.state:
            return await self._rising(event, mapping, previous, now)
        return self._falling(event, mapping, previous)

    async def _rising(
        self, event: AxisEvent, mapping: AxisMapping, previous: KnownState | None, now: datetime
    ) -> list[Intent]:
        if previous is not None and previous.active:
            if previous.timestamp_ms == event.timestamp_ms:
                return [await self._store(event, mapping, now)]  # redelivery
            return [Discard("axis_state_unchanged")]
        store = await self._store(event, mapping, now)
        if previous is not None and event.timestamp_ms - previous.timestamp_ms <= self._rearm_ms:
            # A classifier flickering off and on is one incident, not two.
            rearm = PatchAlert(
                kind="rearm",
                source=mapping.source,
                match_key=event.match_key,
                metadata_patch={"retriggered_at": iso_utc(event.occurred_at)},
                on_miss=(store,),
            )
            return [rearm]
        return [store]

    def _falling(
        self, event: AxisEvent, mapping: AxisMapping, previous: KnownState | None
    ) -> list[Intent]:
        if (
            previous is not None
            and not previous.active
            and previous.timestamp_ms != event.timestamp_ms
        ):
            return [Discard("axis_state_unchanged")]
        # Also sent when the state was lost: a restore without an open alert
        # changes nothing, and an alert left open by the loss gets closed.
        restore = PatchAlert(
            kind="restore",
            source=mapping.source,
            match_key=event.match_key,
            metadata_patch={"restored_at": iso_utc(event.occurred_at)},
        )
        return [restore]

    async def _store(self, event: AxisEvent, mapping: AxisMapping, now: datetime) -> StoreAlert:
        devices = await self._devices.equipment_by_identifier(event.serial)
        return StoreAlert(build_alert(event, mapping, devices, now))
