"""What a decoded message asks the sinks to do.

Decoders and normalisers are pure: they return intents, and the sinks carry
them out against PostgreSQL and Redis. One message may yield several intents
(an alarm restore that finds no open alert falls back to an activity row).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from schemas.canonical import CanonicalAlert, LocationRow, TelemetryRow

PatchKind = Literal["restore", "still_present", "rearm", "cancel", "supersede"]


@dataclass(frozen=True, slots=True)
class StoreAlert:
    """Insert a new alert; a conflict on (source, external_id) is a duplicate.

    ``dismiss_if_key``: a Redis key that, when present, means a cancel for this
    alert arrived before it (CAP), so the alert is stored ``dismissed``.
    """

    alert: CanonicalAlert
    dismiss_if_key: str | None = None


@dataclass(frozen=True, slots=True)
class PatchAlert:
    """Change an existing alert instead of creating one.

    The target is either the alert with ``external_id`` (from ``source``) or,
    when ``match_key`` is given, the newest alert from ``source`` with that
    ``metadata.match_key`` that is still open (no ``restored_at``; for
    ``rearm`` the newest one that *was* restored).

    ``kind`` decides how ``metadata_patch`` applies:
      restore, cancel, supersede: only keys absent from metadata are set, so a
        repeated patch changes nothing;
      still_present: keys are overwritten;
      rearm: ``restored_at`` is removed and ``retriggers`` incremented.
    ``status_from_new``: for cancel, the status an alert still ``new`` moves to.
    ``on_miss``: intents carried out when no target exists.
    """

    kind: PatchKind
    source: str
    metadata_patch: dict[str, Any]
    external_id: str | None = None
    match_key: str | None = None
    status_from_new: str | None = None
    on_miss: tuple[Intent, ...] = ()


@dataclass(frozen=True, slots=True)
class StoreTelemetry:
    rows: tuple[TelemetryRow, ...]
    #: rows dropped inside the message because their key repeated (counted)
    duplicates_in_message: int = 0


@dataclass(frozen=True, slots=True)
class StoreLocations:
    rows: tuple[LocationRow, ...]
    #: rows that may move ``resources.current_location`` (no blocking flags)
    moves: tuple[bool, ...] = ()
    #: how many rows carry each flag
    flags: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SetRedis:
    """Set a Redis string (liveness keys, CAP early-cancel markers)."""

    key: str
    value: str
    ttl_s: int | None = None


@dataclass(frozen=True, slots=True)
class Discard:
    """Dropped on purpose and counted, never dead-lettered."""

    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


Intent = StoreAlert | PatchAlert | StoreTelemetry | StoreLocations | SetRedis | Discard
