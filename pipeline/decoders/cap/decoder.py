"""``alerts.cap``: Common Alerting Protocol 1.2 / 1.1 documents (docs/formats.md 3).

An ``Alert`` or ``Update`` becomes one alert; an ``Update`` also marks the
alerts it supersedes and a ``Cancel`` patches the alerts it names instead of
creating a row. A Cancel that overtakes its original leaves a Redis marker so
the late original is stored already dismissed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
import pydantic
from defusedxml import DefusedXmlException

from pipeline.decoders.alert_meta import MAX_DESCRIPTION, MAX_TITLE, pipeline_metadata
from pipeline.decoders.cap.area import summarise_areas
from pipeline.decoders.envelope import (
    DEFAULT_MAX_MESSAGE_BYTES,
    cut,
    envelope,
    external_id,
    from_pydantic,
    iso_utc,
    to_text,
)
from pipeline.errors import DecodeError, ValidationError
from pipeline.settings import CapSettings
from schemas.canonical import CanonicalAlert
from schemas.cap import CAP_NAMESPACES, CATEGORY_TYPES, CapHeader, CapInfo, parse_references
from schemas.errors import FieldError
from schemas.intents import Discard, Intent, PatchAlert, SetRedis, StoreAlert
from schemas.records import RawRecord

SOURCE: Final = "cap"
CANCELLED_KEY_PREFIX: Final = "eriop:cap:cancelled:"
CANCELLED_TTL_S: Final = 86_400
DEFAULT_LANGUAGE: Final = "en-US"

_SEVERITY_BASE: Final = {"Extreme": 1, "Severe": 2, "Moderate": 3, "Minor": 4, "Unknown": 3}
_HEADER_FIELDS: Final = ("identifier", "sender", "sent", "status", "msgType", "scope", "references")
_INFO_FIELDS: Final = (
    "language", "event", "urgency", "severity", "certainty", "headline",
    "description", "instruction", "onset", "effective", "expires",
)  # fmt: skip


def cap_severity(severity: str, urgency: str, certainty: str) -> int:
    """CAP severity, sharpened by urgency and certainty, on the 1..5 scale."""
    value = _SEVERITY_BASE[severity]
    if urgency == "Immediate" and certainty in ("Observed", "Likely"):
        value -= 1
    if urgency == "Past" or certainty == "Unlikely":
        value += 1
    return min(5, max(1, value))


def _parse_xml(text: str) -> Element:
    try:
        # A str is parsed as already-decoded text, so a stale encoding
        # declaration in the prolog cannot re-decode it.
        root: Element = SafeET.fromstring(text, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise DecodeError(
            "not_xml", f"XML rejected by the hardened parser: {type(exc).__name__}"
        ) from None
    except ParseError as exc:
        raise DecodeError("not_xml", f"invalid XML: {exc}") from None
    return root


def _namespace(root: Element) -> str | None:
    tag = root.tag
    if not tag.startswith("{"):
        return None
    ns, _, local = tag[1:].partition("}")
    return ns if local == "alert" and ns in CAP_NAMESPACES else None


def _text(parent: Element, ns: str, name: str) -> str | None:
    child = parent.find(f"{{{ns}}}{name}")
    if child is None or child.text is None:
        return None
    return child.text.strip() or None


def _texts(parent: Element, ns: str, name: str) -> list[str]:
    out = []
    for child in parent.findall(f"{{{ns}}}{name}"):
        if child.text is not None and child.text.strip():
            out.append(child.text.strip())
    return out


def _fields(parent: Element, ns: str, names: tuple[str, ...]) -> dict[str, Any]:
    return {n: t for n in names if (t := _text(parent, ns, n)) is not None}


def _area_dict(area: Element, ns: str) -> dict[str, Any]:
    geocodes = [
        _fields(code, ns, ("valueName", "value")) for code in area.findall(f"{{{ns}}}geocode")
    ]
    return {
        **_fields(area, ns, ("areaDesc",)),
        "polygons": _texts(area, ns, "polygon"),
        "circles": _texts(area, ns, "circle"),
        "geocodes": geocodes,
    }


def _info_dict(info: Element, ns: str) -> dict[str, Any]:
    data = _fields(info, ns, _INFO_FIELDS)
    categories = _texts(info, ns, "category")
    if categories:
        data["category"] = categories
    data["area"] = [_area_dict(a, ns) for a in info.findall(f"{{{ns}}}area")]
    return data


def _language_matches(language: str, wanted: tuple[str, ...]) -> bool:
    lang = language.lower()
    return any(lang == w.lower() or lang.startswith(w.lower() + "-") for w in wanted)


def _choose_info(root: Element, ns: str, languages: tuple[str, ...]) -> CapInfo:
    """The first info in a wanted language, else the first info at all."""
    infos = root.findall(f"{{{ns}}}info")
    if not infos:
        raise ValidationError("missing_field", "an Alert or Update needs an <info>")
    chosen = next(
        (
            i
            for i in infos
            if _language_matches(_text(i, ns, "language") or DEFAULT_LANGUAGE, languages)
        ),
        infos[0],
    )
    try:
        return CapInfo.model_validate(_info_dict(chosen, ns))
    except pydantic.ValidationError as exc:
        raise from_pydantic(exc, "cap.info") from None


def _reference_ids(header: CapHeader) -> list[str]:
    if header.references is None:
        return []
    try:
        pairs = parse_references(header.references)
    except FieldError as exc:
        raise ValidationError(exc.error_code, exc.reason) from None
    return [external_id(f"{sender},{ident}") for sender, ident in pairs]


def decode_cap(
    record: RawRecord,
    settings: CapSettings,
    now: datetime,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> list[Intent]:
    """One CAP document -> a new alert, supersede/cancel patches, or a discard."""
    value = envelope(record, max_bytes)
    if isinstance(value, Discard):
        return [value]
    text = to_text(value)
    root = _parse_xml(text)
    ns = _namespace(root)
    if ns is None:
        raise DecodeError("unknown_format", f"root {root.tag[:80]!r} is not a CAP 1.1/1.2 <alert>")
    try:
        header = CapHeader.model_validate(_fields(root, ns, _HEADER_FIELDS))
    except pydantic.ValidationError as exc:
        raise from_pydantic(exc, "cap") from None

    exercise = header.status == "Exercise" and settings.accept_exercise
    if header.status != "Actual" and not exercise:
        return [Discard("cap_status_not_actual", {"status": header.status})]
    if header.msg_type in ("Ack", "Error"):
        return [Discard("cap_msgtype_ignored", {"msgType": header.msg_type})]

    own_id = external_id(f"{header.sender},{header.identifier}")
    references = _reference_ids(header)
    if header.msg_type == "Cancel":
        if not references:
            raise ValidationError("missing_field", "a Cancel needs <references>")
        return [_cancel(ref, own_id, header.sent) for ref in references]

    info = _choose_info(root, ns, settings.languages)
    alert = _build_alert(record, header, info, own_id, references, text, exercise, now)
    intents: list[Intent] = [StoreAlert(alert, dismiss_if_key=CANCELLED_KEY_PREFIX + own_id)]
    # Unseen Update targets are ignored: nothing is stored for them (on_miss empty).
    intents.extend(
        PatchAlert(
            kind="supersede",
            source=SOURCE,
            external_id=ref,
            metadata_patch={"superseded_by": own_id},
        )
        for ref in references
    )
    return intents


def _cancel(target: str, cancel_id: str, sent: datetime) -> PatchAlert:
    marker = SetRedis(CANCELLED_KEY_PREFIX + target, cancel_id, ttl_s=CANCELLED_TTL_S)
    return PatchAlert(
        kind="cancel",
        source=SOURCE,
        external_id=target,
        metadata_patch={"cancelled_at": iso_utc(sent), "cancelled_by": cancel_id},
        status_from_new="dismissed",
        on_miss=(marker,),
    )


def _build_alert(
    record: RawRecord,
    header: CapHeader,
    info: CapInfo,
    own_id: str,
    references: list[str],
    document: str,
    exercise: bool,
    now: datetime,
) -> CanonicalAlert:
    areas = summarise_areas(info.areas)
    category = info.categories[0]
    cap_meta: dict[str, Any] = {
        "status": header.status,
        "msgType": header.msg_type,
        "urgency": info.urgency,
        "severity": info.severity,
        "certainty": info.certainty,
        "event": info.event,
        "category": category,
        "sender": header.sender,
        "identifier": header.identifier,
    }
    if header.msg_type == "Update":
        cap_meta["supersedes"] = references
    if areas.ring_closed:
        cap_meta["ring_closed"] = True
    if areas.geocodes:
        cap_meta["geocodes"] = areas.geocodes

    received_at = record.kafka_time
    occurred_at = info.onset or info.effective or header.sent
    metadata = pipeline_metadata(record.ingest_ref(), occurred_at, received_at, header.sent)
    metadata["expires_at"] = iso_utc(info.expires) if info.expires is not None else None
    metadata["cap"] = cap_meta
    metadata["area_geojson"] = areas.geojson
    if exercise:
        metadata["exercise"] = True

    text_parts = [p for p in (info.description, info.instruction) if p]
    expired = info.expires is not None and info.expires < now
    try:
        return CanonicalAlert(
            source=SOURCE,
            external_id=own_id,
            type=CATEGORY_TYPES[category],
            severity=cap_severity(info.severity, info.urgency, info.certainty),
            status="expired" if expired else "new",
            title=cut(info.headline or info.event, MAX_TITLE),
            description=cut("\n\n".join(text_parts), MAX_DESCRIPTION) if text_parts else None,
            location=areas.location,
            raw_payload={"format": "cap", "xml": document},
            metadata=metadata,
            received_at=received_at,
            processed_at=now,
        )
    except pydantic.ValidationError as exc:
        raise from_pydantic(exc, "cap") from None
