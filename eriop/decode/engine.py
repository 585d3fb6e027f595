"""Messages through the real decoders and stages, with in-memory stand-ins for the
shared state the worker keeps in PostgreSQL and Redis.

One :class:`Decoder` decodes messages in order and remembers what the worker
would: the last state of each Axis device item (so a falling edge after a rising
one is a restore) and each resource's last accepted GPS fix (so a jump is flagged
as a teleport). Resources come from a file instead of the ``resources`` table;
without one, Axis alerts are unplaced and GPS fixes are shown unresolved.
Jurisdictions and geofences are not applied (they live in the database).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from pipeline.decoders.alarm.decoder import decode_alarm
from pipeline.decoders.alert_json import decode_alert_json
from pipeline.decoders.axis.decoder import build_alert
from pipeline.decoders.axis.event import AxisEvent, parse_axis
from pipeline.decoders.cap.decoder import decode_cap
from pipeline.decoders.gps.decoder import decode_gps
from pipeline.decoders.telemetry.decoder import decode_telemetry
from pipeline.flows.common import dead_letter_for
from pipeline.settings import Settings
from pipeline.stages.axis_edges import AxisEdgeTracker
from pipeline.stages.plausibility import (
    AcceptedFix,
    PlausibilityTracker,
    ResourceInfo,
    resolve_ref,
)
from schemas.canonical import CanonicalAlert, DeviceInfo, GeoPoint, LocationFix
from schemas.dead_letter import DeadLetter
from schemas.intents import (
    Discard,
    Intent,
    PatchAlert,
    SetRedis,
    StoreAlert,
    StoreLocations,
    StoreTelemetry,
)
from schemas.records import RawRecord

#: what the decoded message becomes, in order of precedence
OUTCOMES = ("dead_letter", "alert", "patch", "telemetry", "location", "discard", "live_state")


@dataclass
class Decoded:
    """What one message would become."""

    record: RawRecord
    outcome: str
    intents: list[Intent] = field(default_factory=list)
    dead_letter: DeadLetter | None = None
    #: the parsed Axis event, for alerts.axis
    axis_event: AxisEvent | None = None
    #: the alert a rising edge of this Axis event would make, when it does not make one
    rising_edge_alert: CanonicalAlert | None = None
    #: GPS fixes not resolved to a resource (no resources given)
    fixes: list[LocationFix] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Resources:
    """The ``resources`` rows the decoder looks devices and vehicles up in."""

    gps: tuple[ResourceInfo, ...] = ()
    equipment: tuple[DeviceInfo, ...] = ()
    #: equipment identifiers (upper case), parallel to ``equipment``
    serials: tuple[str, ...] = ()
    given: bool = False


def load_resources(path: Path) -> Resources:
    """Resources from a JSON file: a list of ``resources`` rows, or an object with
    a ``resources`` list (the shape of tests/fixtures/samples/fixtures.json). Each
    needs ``id``, ``type`` and ``identifier``; ``name``, ``current_location``
    ``{lon, lat}``, ``agency_id`` and ``specifications.max_speed_mps`` are used
    when present. ValueError names what is wrong."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read resources from {path}: {exc}") from exc
    rows = data.get("resources") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise ValueError(f'{path}: expected a list of resources or {{"resources": [...]}}')
    gps: list[ResourceInfo] = []
    equipment: list[DeviceInfo] = []
    serials: list[str] = []
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for i, row in enumerate(rows):
        try:
            rid, kind, ident = UUID(str(row["id"])), str(row["type"]), str(row["identifier"])
            spec = row.get("specifications") or {}
            top = spec.get("max_speed_mps")
            gps.append(ResourceInfo(rid, kind, ident, float(top) if top is not None else None))
            if kind == "equipment":
                loc = row.get("current_location")
                point = GeoPoint(float(loc["lon"]), float(loc["lat"])) if loc else None
                agency = row.get("agency_id")
                name = str(row.get("name") or ident)
                agency_id = UUID(str(agency)) if agency else None
                equipment.append(DeviceInfo(rid, name, point, agency_id, epoch))
                serials.append(ident.upper())
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path}: resource {i + 1} is not usable: {exc!r}") from exc
    return Resources(tuple(gps), tuple(equipment), tuple(serials), given=True)


class _AxisStates:
    """The Redis hash of last Axis states, in memory."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str], str] = {}

    async def get(self, serial: str, field: str) -> str | None:
        return self._values.get((serial, field))

    async def set(self, serial: str, field: str, value: str) -> None:
        self._values[(serial, field)] = value


class _Directory:
    """Equipment resources by serial, from the resources file."""

    def __init__(self, resources: Resources) -> None:
        self._resources = resources

    async def equipment_by_identifier(self, serial: str) -> list[DeviceInfo]:
        r = self._resources
        return [d for d, s in zip(r.equipment, r.serials, strict=True) if s == serial.upper()]


class _NoFixes:
    """No resource has been located before the first message decoded."""

    async def load(self, resource_ids: Sequence[UUID]) -> dict[UUID, AcceptedFix]:
        return {}


def _outcome(intents: Sequence[Intent], fixes: Sequence[LocationFix]) -> str:
    kinds = {
        "alert": StoreAlert,
        "patch": PatchAlert,
        "telemetry": StoreTelemetry,
        "location": StoreLocations,
        "discard": Discard,
        "live_state": SetRedis,
    }
    for name, kind in kinds.items():
        if any(isinstance(i, kind) for i in intents) or (name == "location" and fixes):
            return name
    return "discard"


class Decoder:
    """Decodes messages of one run in order, sharing state between them."""

    def __init__(self, settings: Settings, resources: Resources | None = None) -> None:
        self._s = settings
        self._resources = resources or Resources()
        self._axis = AxisEdgeTracker(_AxisStates(), _Directory(self._resources), settings.axis)
        self._gps = PlausibilityTracker(_NoFixes(), settings.gps)
        self._by_id = {r.id: r for r in self._resources.gps}
        self._by_identifier: dict[str, list[ResourceInfo]] = {}
        for r in self._resources.gps:
            self._by_identifier.setdefault(r.identifier, []).append(r)

    async def decode(self, record: RawRecord, now: datetime) -> Decoded:
        """What ``record`` would become at the pipeline clock ``now``."""
        out = Decoded(record, "discard")
        try:
            out.intents = await self._intents(record, now, out)
        except Exception as exc:  # as the worker does: a dead letter
            # (an InputError with its code; anything else is internal_error)
            out.outcome = "dead_letter"
            out.dead_letter = dead_letter_for(record, exc, now)
            return out
        out.outcome = _outcome(out.intents, out.fixes)
        if out.outcome == "alert":
            out.notes.append(
                "stored as new unless an alert with the same source and external_id exists "
                "(then counted as a duplicate, nothing changes)"
            )
        elif out.outcome == "patch":
            out.notes.append("changes the target alert if it exists; else on_miss applies")
        return out

    async def _intents(self, record: RawRecord, now: datetime, out: Decoded) -> list[Intent]:
        s = self._s
        topic, limit = record.topic, s.max_message_bytes
        if topic == "alerts.alarm":
            return decode_alarm(record, s.alarm, now, limit)
        if topic == "alerts.json":
            return decode_alert_json(record, now, limit)
        if topic == "alerts.cap":
            return decode_cap(record, s.cap, now, limit)
        if topic == "alerts.axis":
            return await self._axis_intents(record, now, out)
        if topic == "telemetry.raw":
            decoded = decode_telemetry(record, s.telemetry, now, limit)
            return [decoded]
        if topic == "gps.raw":
            return await self._gps_intents(record, now, out)
        raise ValueError(f"not an inbound topic: {topic}")

    async def _axis_intents(self, record: RawRecord, now: datetime, out: Decoded) -> list[Intent]:
        event = parse_axis(record, self._s.axis, now, self._s.max_message_bytes)
        if isinstance(event, Discard):
            return [event]
        out.axis_event = event
        intents = await self._axis.intents(event, now)
        mapping = event.mapping
        if mapping is not None and not any(isinstance(i, StoreAlert) for i in intents):
            devices = await _Directory(self._resources).equipment_by_identifier(event.serial)
            out.rising_edge_alert = build_alert(event, mapping, devices, now)
        if not self._resources.given:
            out.notes.append(
                "no --resources: the device is not looked up, so an alert is not placed"
            )
        return intents

    async def _gps_intents(self, record: RawRecord, now: datetime, out: Decoded) -> list[Intent]:
        fixes = decode_gps(record, self._s.gps, now, self._s.max_message_bytes)
        if isinstance(fixes, Discard):
            return [fixes]
        if not self._resources.given:
            out.fixes = list(fixes)
            out.notes.append(
                "no --resources: fixes are not resolved to resources; the worker "
                "dead-letters a fix naming no known resource (unknown_device)"
            )
            return []
        pairs = [(f, resolve_ref(f.resource_ref, self._by_id, self._by_identifier)) for f in fixes]
        return [await self._gps.assess(pairs)]
