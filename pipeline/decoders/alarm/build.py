"""From a read alarm event to what the sinks should do (docs/formats.md 1.7-1.10):
new alerts, restore and still-present patches on open alerts, and
account-activity rows for the alarm panel's telemetry device.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal
from uuid import UUID

from pipeline.decoders.alarm.codes import (
    HEARTBEAT,
    OPEN_CLOSE,
    RESTORE,
    AlertClass,
    cid_class,
    cid_is_user_code,
    cid_text,
    sia_class,
    sia_is_user_code,
    sia_restore_targets,
    sia_text,
)
from pipeline.decoders.alarm.dc09_data import XDATA_TEXT_LABELS, ContactId, SiaEvent, XData
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
_MISSING: Final = "x"


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


@dataclass(frozen=True, slots=True)
class Event:
    """One SIA or Contact ID event, in the terms the columns are built from."""

    scheme: Literal["sia", "cid"]
    code: str
    qualifier: int | None
    area: int | None
    number: int | None
    user: int | None
    user_code: bool
    #: the event part of external_id, e.g. "cid-1110-01-004" or "sia-BA-17-a2"
    id_event: str
    metric_text: str
    texts: tuple[str, ...]
    details: dict[str, Any]
    match_a: str
    match_b: str

    def match_key(self, site: str, code: str | None = None) -> str:
        return f"{site}|{self.scheme}:{code or self.code}|{self.match_a}|{self.match_b}"

    @property
    def subject(self) -> int | None:
        """The zone or user number a row is about."""
        if self.number is None and self.user_code:
            return self.user
        return self.number


def _part(v: int | None) -> str:
    return _MISSING if v is None else str(v)


def _nonzero(digits: str) -> int | None:
    """A Contact ID number field; all zeros means none."""
    return int(digits) if digits.isdigit() and int(digits) else None


def cid_event(cid: ContactId, *, id_prefix: str = "cid-") -> Event:
    q = cid.qualifier
    return Event(
        scheme="cid",
        code=cid.code,
        qualifier=q,
        area=_nonzero(cid.partition),
        number=_nonzero(cid.zone),
        user=None,
        user_code=cid_is_user_code(cid.code),
        id_event=f"{id_prefix}{q}{cid.code}-{cid.partition}-{cid.zone}",
        metric_text=f"cid:{q}{cid.code}",
        texts=(cid_text(cid.code),),
        details={"qualifier": q, "code": cid.code, "partition": cid.partition, "zone": cid.zone},
        match_a=cid.partition,
        match_b=cid.zone,
    )


def sia_event(sia: SiaEvent, code: str) -> Event:
    texts = [sia_text(code)]
    details: dict[str, Any] = {
        "code": code,
        "ri": sia.ri,
        "id": sia.user,
        "ti": sia.ti,
        "number": sia.number,
        "text": sia.text,
    }
    if sia.ri_text:
        texts.append(f"Area {sia.ri}: {sia.ri_text}")
        details["ri_text"] = sia.ri_text
    if sia.user_text:
        texts.append(f"User {sia.user}: {sia.user_text}")
        details["id_text"] = sia.user_text
    if sia.text:
        texts.append(sia.text)
    if sia.tail:
        details["tail"] = sia.tail
    user_part = "" if sia.user is None else f"-u{sia.user}"
    return Event(
        scheme="sia",
        code=code,
        qualifier=None,
        area=sia.ri,
        number=sia.number,
        user=sia.user,
        user_code=sia_is_user_code(code),
        id_event=f"sia-{code}-{_part(sia.number)}-a{_part(sia.ri)}{user_part}",
        metric_text=f"sia:{code}",
        texts=tuple(texts),
        details=details,
        match_a=_part(sia.ri),
        match_b=_part(sia.number),
    )


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
