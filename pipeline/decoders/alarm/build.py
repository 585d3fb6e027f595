"""From a read alarm event to what the sinks should do (docs/formats.md 1.7-1.10):
new alerts, restore and still-present patches on open alerts, and
account-activity rows for the alarm panel's telemetry device.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from uuid import UUID

from pipeline.decoders.alarm.codes import (
    HEARTBEAT,
    OPEN_CLOSE,
    RESTORE,
    AlertClass,
    cid_class,
    sia_class,
    sia_restore_targets,
)
from pipeline.decoders.alarm.dc09_data import XDATA_TEXT_LABELS, XData
from pipeline.decoders.alarm.events import Event
from pipeline.decoders.envelope import cut, device_uuid, external_id, iso_utc
from schemas.canonical import CanonicalAlert, GeoPoint, TelemetryRow
from schemas.intents import Intent, PatchAlert, SetRedis, StoreAlert, StoreTelemetry

SOURCE: Final = "alarm_system"
DEVICE_TYPE: Final = "alarm_panel"
ALIVE_KEY_PREFIX: Final = "eriop:alarm:alive:"
MAX_TITLE: Final = 255
MAX_DESCRIPTION: Final = 65_536
#: a source clock further ahead of received_at than this is recorded
CLOCK_SKEW_LIMIT_S: Final = 300.0


@dataclass(frozen=True, slots=True)
class Origin:
    """Who sent an event, when it happened, and what every row from it shares."""

    site: str
    account: str
    receiver: str | None
    received_at: datetime
    processed_at: datetime
    t_event: datetime
    #: t_event came from the sender's clock (xdata H or the frame stamp)
    from_source: bool
    seq: str | None
    #: "dc09:<site>:<seq>:" or "cid16:<acct>:"; the event part and bucket follow
    id_prefix: str
    bucket: str
    xdata: XData
    location: GeoPoint | None
    address: dict[str, Any] | None
    raw_payload: dict[str, Any]
    ingest: dict[str, object]
    #: {"dc09": {...}} or {"cid16": {...}}
    format_meta: dict[str, Any]

    def external_id(self, event_part: str) -> str:
        return external_id(f"{self.id_prefix}{event_part}:{self.bucket}")

    @property
    def device(self) -> tuple[UUID, str]:
        ref = "alarm:" + self.site
        return device_uuid(ref)[0], ref

    @property
    def clock_skew_s(self) -> float | None:
        """Seconds the sender's clock is ahead of reception, when that is suspicious."""
        if not self.from_source:
            return None
        skew = (self.t_event - self.received_at).total_seconds()
        return round(skew, 3) if skew > CLOCK_SKEW_LIMIT_S else None


def telemetry_row(
    origin: Origin,
    metric: str,
    *,
    value: float | None,
    text: str | None,
    external: str,
    area: int | None,
    extra: dict[str, Any] | None = None,
) -> TelemetryRow:
    """An account-activity row on the panel's device (uuid5 of "alarm:" + site)."""
    device_id, ref = origin.device
    meta: dict[str, Any] = {
        "external_id": external,
        "area": area,
        "receiver": origin.receiver,
        "seq": origin.seq,
        "device_ref": ref,
    }
    if origin.format_meta.get("dc09", {}).get("length_mismatch"):
        meta["length_mismatch"] = True
    meta.update(extra or {})
    return TelemetryRow(
        time=origin.t_event,
        device_id=device_id,
        device_type=DEVICE_TYPE,
        metric_name=metric,
        metric_value=value,
        metric_text=text,
        location=origin.location,
        metadata=meta,
    )


def _event_row(ev: Event, origin: Origin, metric: str, **extra: Any) -> TelemetryRow:
    subject = ev.subject
    return telemetry_row(
        origin,
        metric,
        value=None if subject is None else float(subject),
        text=ev.metric_text,
        external=origin.external_id(ev.id_event),
        area=ev.area,
        extra=extra,
    )


def heartbeat_intents(origin: Origin) -> list[Intent]:
    """A NULL frame: the panel is alive (row plus the supervision key)."""
    row = telemetry_row(
        origin,
        HEARTBEAT,
        value=1.0,
        text=None,
        external=origin.external_id("null"),
        area=None,
    )
    when = iso_utc(origin.t_event)
    return [StoreTelemetry((row,)), SetRedis(ALIVE_KEY_PREFIX + origin.site, when)]


def _title(ev: Event, origin: Origin, type_: str) -> str:
    parts = [f"{type_.replace('_', ' ').capitalize()} - account {origin.site}"]
    if ev.area is not None:
        parts.append(f"area {ev.area}")
    subject = ev.subject
    if subject is not None:
        parts.append(f"{'user' if ev.user_code else 'zone'} {subject}")
    return cut(", ".join(parts), MAX_TITLE)


def _description(ev: Event, origin: Origin) -> str:
    lines = list(ev.texts)
    for letter, value in origin.xdata.texts:
        label = XDATA_TEXT_LABELS[letter]
        lines.append(f"{label}: {value}" if label else value)
    return cut("\n".join(lines), MAX_DESCRIPTION)


def build_alert(ev: Event, origin: Origin, cls: AlertClass) -> CanonicalAlert:
    metadata: dict[str, Any] = {
        "occurred_at": iso_utc(origin.t_event),
        "ingest": origin.ingest,
        "site": origin.site,
        "account": origin.account,
        "receiver": origin.receiver,
        **origin.format_meta,
        ev.scheme: ev.details,
        "xdata": dict(origin.xdata.blocks),
        "match_key": ev.match_key(origin.site),
    }
    if cls.unmapped:
        metadata["unmapped"] = True
    if origin.xdata.verification_url:
        metadata["verification_url"] = origin.xdata.verification_url
    if (skew := origin.clock_skew_s) is not None:
        metadata["clock_skew_s"] = skew
    return CanonicalAlert(
        source=SOURCE,
        external_id=origin.external_id(ev.id_event),
        type=cls.type,
        severity=cls.severity,
        status="new",
        title=_title(ev, origin, cls.type),
        description=_description(ev, origin),
        location=origin.location,
        address=origin.address,
        raw_payload=origin.raw_payload,
        metadata=metadata,
        received_at=origin.received_at,
        processed_at=origin.processed_at,
    )


def _restore(ev: Event, origin: Origin, targets: tuple[str, ...]) -> PatchAlert:
    """Patch the newest open alert of the first target that matches; with no
    match, an unmatched ``alarm.restore`` row keeps the report."""
    on_miss: tuple[Intent, ...]
    if len(targets) > 1:
        on_miss = (_restore(ev, origin, targets[1:]),)
    else:
        on_miss = (StoreTelemetry((_event_row(ev, origin, RESTORE, unmatched=True),)),)
    return PatchAlert(
        kind="restore",
        source=SOURCE,
        metadata_patch={
            "restored_at": iso_utc(origin.t_event),
            "restore_external_id": origin.external_id(ev.id_event),
        },
        match_key=ev.match_key(origin.site, targets[0]),
        on_miss=on_miss,
    )


def event_intents(ev: Event, origin: Origin, *, open_close_as_alerts: bool) -> list[Intent]:
    """Classify one event (1.7) and apply the restore and still-present rules (1.8)."""
    if ev.scheme == "cid":
        cls = cid_class(ev.code)
        if ev.qualifier == 3 and cls != OPEN_CLOSE:
            return [_restore(ev, origin, (ev.code,))]
        if ev.qualifier == 6 and isinstance(cls, AlertClass):
            alert = build_alert(ev, origin, cls)
            return [
                PatchAlert(
                    kind="still_present",
                    source=SOURCE,
                    metadata_patch={"still_present_at": iso_utc(origin.t_event)},
                    match_key=ev.match_key(origin.site),
                    on_miss=(StoreAlert(alert),),
                )
            ]
    else:
        targets = sia_restore_targets(ev.code)
        if targets:
            return [_restore(ev, origin, targets)]
        cls = sia_class(ev.code)
    if cls == OPEN_CLOSE and open_close_as_alerts:
        cls = AlertClass("open_close", 5)
    if isinstance(cls, AlertClass):
        return [StoreAlert(build_alert(ev, origin, cls))]
    return [StoreTelemetry((_event_row(ev, origin, cls),))]
