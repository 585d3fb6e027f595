"""GPS plausibility against earlier fixes (docs/formats.md 6.3, 6.4).

The tracker keeps, per resource, the last accepted fix and the recent fixes
rejected only as teleports. A fix is *accepted* (it becomes the reference for
the next one and may move ``resources.current_location``) when it carries no
flag, or only ``estimated``.

* ``out_of_order``: not newer than the last accepted fix.
* ``teleport``: reaching it from the last accepted fix would take more than
  the resource's top speed, after both fixes' accuracy radii are allowed for.
* Recovery: when the 3 latest teleport-flagged fixes agree with each other, the
  newest is accepted after all (``metadata.recovered``), so one wrong reference
  fix cannot pin a resource. Only teleports count: an out-of-order run is a
  replay or a late upload and must never move a resource back in time, and
  low-accuracy fixes must never move it at all.
* ``low_accuracy``: accuracy, HDOP or satellites below the configured bar.

The state is loaded through an injected :class:`LastFixLoader`, once per
resource, in bulk for the batch that first names it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Final, Protocol
from uuid import UUID

from pipeline.errors import NormalizeError
from pipeline.settings import GpsSettings
from pipeline.stages.geodesy import AcceptedFix, implied_speed, round_mm
from schemas.canonical import GeoPoint, LocationFix, LocationRow
from schemas.gps import CANONICAL_UUID_RE
from schemas.intents import StoreLocations

__all__ = ["AcceptedFix", "LastFixLoader", "PlausibilityTracker", "ResourceInfo", "resolve_ref"]

#: flags that still let a fix become the new position
_ACCEPTABLE: Final = frozenset({"estimated"})
_RECOVERY_RUN: Final = 3
_PERSONNEL: Final = "personnel"
_NONE: Final[frozenset[str]] = frozenset()
_tuple: Final = tuple.__new__


@dataclass(frozen=True)
class ResourceInfo:
    """The ``resources`` row a fix belongs to."""

    id: UUID
    type: str
    identifier: str
    max_speed_mps: float | None = None


class LastFixLoader(Protocol):
    """Where the last accepted fix of a resource is kept between runs."""

    async def load(self, resource_ids: Sequence[UUID]) -> dict[UUID, AcceptedFix]:
        """Last accepted fixes of those resources that have one."""
        ...


@dataclass(slots=True)
class _State:
    last: AcceptedFix | None
    #: teleport-flagged fixes since the last accepted one, oldest first
    rejected: list[AcceptedFix] = field(default_factory=list)


def resolve_ref(
    ref: str,
    by_id: Mapping[UUID, ResourceInfo],
    by_identifier: Mapping[str, list[ResourceInfo]],
) -> ResourceInfo:
    """The one resource a fix names: by UUID, else by exact identifier.

    A UUID-shaped reference that is no resource id is also tried as an
    identifier, since a Kafka key may be either. Not found or ambiguous
    raises ``unknown_device``.
    """
    if CANONICAL_UUID_RE.fullmatch(ref):
        info = by_id.get(UUID(ref))
        if info is not None:
            return info
    matches = by_identifier.get(ref, [])
    if len(matches) == 1:
        return matches[0]
    shown = ref[:100]
    if matches:
        raise NormalizeError(
            "unknown_device", f"resource identifier {shown!r} matches {len(matches)} resources"
        )
    raise NormalizeError("unknown_device", f"no resource with id or identifier {shown!r}")


class PlausibilityTracker:
    """Flags fixes that contradict a resource's recent track, and keeps that track."""

    def __init__(self, loader: LastFixLoader, settings: GpsSettings) -> None:
        self._loader = loader
        self._settings = settings
        # keyed by the UUID's int: UUID's own __hash__ is Python code, run per fix
        self._states: dict[int, _State] = {}
        self._undo: dict[int, _State] = {}
        #: how often each flag was given in the batch being assessed
        self._flagged: Counter[str] = Counter()

    def last_accepted(self, resource_id: UUID) -> AcceptedFix | None:
        """The reference fix of a resource, for the sink to persist."""
        state = self._states.get(resource_id.int)
        return None if state is None else state.last

    def forget(self, resource_ids: Sequence[UUID]) -> None:
        """Drop what is known about resources, so the loader is asked again."""
        for rid in resource_ids:
            self._states.pop(rid.int, None)

    def rollback(self) -> None:
        """Undo the state changes of the last :meth:`assess`.

        For when that batch could not be written and will be assessed again:
        otherwise its own fixes would be the reference and come back flagged.
        """
        self._states.update(self._undo)
        self._undo = {}

    def v_max(self, info: ResourceInfo) -> float:
        """Top plausible speed of a resource in m/s."""
        if info.max_speed_mps is not None and info.max_speed_mps > 0:
            return info.max_speed_mps
        if info.type == _PERSONNEL:
            return self._settings.max_speed_personnel_mps
        return self._settings.max_speed_vehicle_mps

    async def assess(self, fixes: Sequence[tuple[LocationFix, ResourceInfo]]) -> StoreLocations:
        """Rows for a batch of resolved fixes, in order, and which of them move their resource."""
        states = self._states
        # once per resource and batch, not per fix: its key and top speed (a
        # fix's info is the resolver's one object per resource)
        known: dict[int, tuple[int, float]] = {}
        unknown: dict[int, UUID] = {}
        for _, info in fixes:
            if id(info) not in known:
                key = info.id.int
                known[id(info)] = (key, self.v_max(info))
                if key not in states:
                    unknown[key] = info.id
        if unknown:
            loaded = await self._loader.load(list(unknown.values()))
            for key, rid in unknown.items():
                states[key] = _State(last=loaded.get(rid))
        undo: dict[int, _State] = {}
        self._undo = undo
        # a fix's info gives its state and top speed in one lookup
        by_info: dict[int, tuple[_State, float]] = {}
        for at, (key, v_max) in known.items():
            state = states[key]
            if key not in undo:
                undo[key] = _State(state.last, list(state.rejected))
            by_info[at] = (state, v_max)
        self._flagged = flagged = Counter[str]()
        rows: list[LocationRow] = []
        moves: list[bool] = []
        assess_one = self._assess_one
        for fix, info in fixes:
            state, v_max = by_info[id(info)]
            row, moved = assess_one(fix, info, state, v_max)
            rows.append(row)
            moves.append(moved)
        return StoreLocations(rows=tuple(rows), moves=tuple(moves), flags=dict(flagged))

    def _low_dop(self, meta: Mapping[str, Any]) -> bool:
        """Whether an NMEA fix's HDOP or satellite count is below the bar."""
        s = self._settings
        hdop = meta.get("hdop")
        satellites = meta.get("satellites")
        return (isinstance(hdop, int | float) and hdop > s.max_hdop) or (
            isinstance(satellites, int) and satellites < s.min_satellites
        )

    def _assess_one(
        self, fix: LocationFix, info: ResourceInfo, state: _State, v_max: float
    ) -> tuple[LocationRow, bool]:
        when, _, lat, lon, speed, heading, accuracy, source, meta, fix_flags = fix
        flags = list(fix_flags)
        # JSON AVL has only the accuracy radius; NMEA may have HDOP and satellites
        if "low_accuracy" not in flags and (
            (accuracy is not None and accuracy > self._settings.max_accuracy_m)
            or (("hdop" in meta or "satellites" in meta) and self._low_dop(meta))
        ):
            flags.append("low_accuracy")
        here = _tuple(AcceptedFix, (when, lat, lon, accuracy))
        metadata: dict[str, Any] = dict(meta)
        last = state.last
        if last is not None:
            implied = implied_speed(last, here)
            if implied is None:
                flags.append("out_of_order")
            else:
                metadata["implied_speed_mps"] = round_mm(implied)
                if implied > v_max:
                    flags.append("teleport")

        blocking = set(flags) - _ACCEPTABLE if flags else _NONE
        if blocking == {"teleport"}:
            if self._recovers(state.rejected, here, v_max):
                flags.remove("teleport")
                metadata["recovered"] = True
                blocking = set()
            else:
                state.rejected.append(here)
                del state.rejected[: -(_RECOVERY_RUN - 1)]
        accepted = not blocking
        if accepted:
            state.last = here
            if state.rejected:
                state.rejected.clear()
        metadata["flags"] = flags
        if flags:
            self._flagged.update(flags)
        # NamedTuple constructors are Python functions; building the tuples
        # directly gives the same objects at a fraction of the cost per fix
        row = _tuple(
            LocationRow,
            (
                when, info.id, info.type, _tuple(GeoPoint, (lon, lat)), speed, heading, accuracy,
                source, metadata,
            ),
        )  # fmt: skip
        return row, accepted

    @staticmethod
    def _recovers(rejected: list[AcceptedFix], newest: AcceptedFix, v_max: float) -> bool:
        """Whether ``newest`` and the teleports before it form a consistent track."""
        run = [*rejected[-(_RECOVERY_RUN - 1) :], newest]
        if len(run) < _RECOVERY_RUN:
            return False
        for a, b in pairwise(run):
            speed = implied_speed(a, b)
            if speed is None or speed > v_max:
                return False
        return True
