"""Edges of Axis device states (docs/formats.md 2.2): an alert on a rising edge,
a restore on a falling edge, decided from the last known state of each device
item, which is kept in a shared store (Redis) so every worker sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

from pipeline.decoders.axis.decoder import build_alert
from pipeline.decoders.axis.event import AxisEvent
from pipeline.decoders.axis.mapping import AxisMapping
from pipeline.decoders.envelope import iso_utc
from pipeline.settings import AxisSettings
from schemas.canonical import DeviceInfo
from schemas.intents import Discard, Intent, PatchAlert, SetRedis, StoreAlert

ALIVE_KEY_PREFIX: Final = "eriop:axis:alive:"


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
