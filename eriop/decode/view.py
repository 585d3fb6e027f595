"""How ``eriop decode`` shows a result: a JSON object (``--json``) or text."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from eriop.decode.engine import Decoded
from pipeline.decoders.axis.event import AxisEvent
from pipeline.decoders.envelope import iso_utc
from schemas.canonical import CanonicalAlert, GeoPoint
from schemas.intents import (
    Discard,
    Intent,
    PatchAlert,
    SetRedis,
    StoreAlert,
    StoreLocations,
    StoreTelemetry,
)


def jsonable(value: Any) -> Any:
    """``value`` with datetimes as ISO 8601 UTC text, UUIDs as text, points as
    ``{lon, lat}``, rows and models as objects."""
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, GeoPoint):
        return {"lon": value.lon, "lat": value.lat}
    if isinstance(value, BaseModel):
        return jsonable({k: getattr(value, k) for k in type(value).model_fields})
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return jsonable(value._asdict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return value


def intent_view(intent: Intent) -> dict[str, Any]:
    if isinstance(intent, StoreAlert):
        out: dict[str, Any] = {"intent": "store_alert", "alert": jsonable(intent.alert)}
        if intent.dismiss_if_key:
            out["dismiss_if_key"] = intent.dismiss_if_key
        return out
    if isinstance(intent, PatchAlert):
        patch = {k: v for k, v in jsonable(intent).items() if v not in (None, [])}
        patch["on_miss"] = [intent_view(i) for i in intent.on_miss]
        return {"intent": "patch_alert", **patch}
    if isinstance(intent, StoreTelemetry):
        return {
            "intent": "store_telemetry",
            "rows": jsonable(intent.rows),
            "duplicates_in_message": intent.duplicates_in_message,
        }
    if isinstance(intent, StoreLocations):
        return {
            "intent": "store_locations",
            "rows": jsonable(intent.rows),
            "moves_resource": list(intent.moves),
        }
    if isinstance(intent, SetRedis):
        return {"intent": "set_redis", **jsonable(intent)}
    if isinstance(intent, Discard):
        return {"intent": "discard", "reason": intent.reason, "detail": jsonable(intent.detail)}
    raise TypeError(f"unknown intent {intent!r}")


def _event_view(event: AxisEvent) -> dict[str, Any]:
    mapping = event.mapping
    return {
        "serial": event.serial,
        "topic": event.topic,
        "path": event.path,
        "source": dict(event.source),
        "state": event.state,
        "occurred_at": iso_utc(event.occurred_at),
        "mapping": None if mapping is None else jsonable(mapping),
    }


def result_view(d: Decoded, index: int) -> dict[str, Any]:
    """One decoded message as a JSON object."""
    r = d.record
    out: dict[str, Any] = {"message": index, "topic": r.topic, "outcome": d.outcome}
    if d.dead_letter is not None:
        e = d.dead_letter
        out["dead_letter"] = {"stage": e.stage, "error_code": e.error_code, "reason": e.reason}
    else:
        out["intents"] = [intent_view(i) for i in d.intents]
    if d.axis_event is not None:
        out["axis_event"] = _event_view(d.axis_event)
    if d.rising_edge_alert is not None:
        out["rising_edge_alert"] = jsonable(d.rising_edge_alert)
    if d.fixes:
        out["fixes"] = jsonable(d.fixes)
    if d.notes:
        out["notes"] = list(d.notes)
    return out


def as_json(d: Decoded, index: int) -> str:
    return json.dumps(result_view(d, index), ensure_ascii=False, sort_keys=False)


# --- text ------------------------------------------------------------------------


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _lines(value: Any, indent: int) -> Iterator[str]:
    pad = "  " * indent
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, dict | list) and v:
                yield f"{pad}{k}:"
                yield from _lines(v, indent + 1)
            else:
                yield f"{pad}{k}: {_scalar(v) if v not in ({}, []) else '-'}"
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                first, *rest = list(_lines(item, indent + 1)) or [""]
                yield f"{pad}- {first.lstrip()}"
                yield from rest
            else:
                yield f"{pad}- {_scalar(item)}"
    else:
        yield f"{pad}{_scalar(value)}"


def _headline(d: Decoded) -> str:
    if d.dead_letter is not None:
        e = d.dead_letter
        return f"dead letter: {e.error_code} at stage {e.stage}: {e.reason}"
    if d.outcome == "alert":
        alerts = [i.alert for i in d.intents if isinstance(i, StoreAlert)]
        return "alert: " + "; ".join(_alert_line(a) for a in alerts)
    if d.outcome == "patch":
        kinds = ", ".join(i.kind for i in d.intents if isinstance(i, PatchAlert))
        return f"patch of an existing alert ({kinds})"
    if d.outcome == "telemetry":
        n = sum(len(i.rows) for i in d.intents if isinstance(i, StoreTelemetry))
        return f"telemetry: {n} row{'s' * (n != 1)}"
    if d.outcome == "location":
        n = sum(len(i.rows) for i in d.intents if isinstance(i, StoreLocations)) or len(d.fixes)
        return f"location: {n} fix{'es' * (n != 1)}"
    if d.outcome == "discard":
        reasons = ", ".join(i.reason for i in d.intents if isinstance(i, Discard))
        return f"discarded (counted, not dead-lettered): {reasons}"
    return "live state only (Redis)"


def _alert_line(a: CanonicalAlert) -> str:
    return f"{a.type} severity {a.severity} {a.status} {a.source}/{a.external_id}"


def as_text(d: Decoded, index: int) -> str:
    view = result_view(d, index)
    lines = [f"message {index} ({d.record.topic}): {_headline(d)}"]
    for name in ("intents", "axis_event", "rising_edge_alert", "fixes", "notes"):
        if view.get(name):
            lines.append(f"  {name.replace('_', ' ')}:")
            lines.extend(_lines(view[name], 2))
    return "\n".join(lines)
