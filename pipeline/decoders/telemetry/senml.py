"""SenML packs (RFC 8428, JSON) as telemetry rows (docs/formats.md 5.1).

This is the busiest loop of the pipeline, so records are read as plain dicts
with inline checks; error text is only formatted when a check fails.
"""

from __future__ import annotations

from datetime import datetime
from math import isfinite
from typing import Any, Final
from uuid import UUID

from pipeline.decoders.telemetry.fields import MessageContext, device, point, valid_name
from pipeline.errors import DecodeError, ValidationError
from schemas.canonical import GeoPoint, TelemetryRow
from schemas.telemetry import (
    BASE64_RE,
    MAX_METRIC_NAME,
    MAX_METRIC_TEXT,
    SENML_BASE_LABELS,
    SENML_LABELS,
    SENML_MAX_VERSION,
    SENML_RELATIVE_LIMIT,
)

_LATLON: Final = frozenset({"lat", "lon"})
# The NamedTuple constructor is a Python-level function; building the tuple
# directly gives the same object at half the cost on the per-point path.
_row: Final = tuple.__new__
_DEVICE_SEPARATORS: Final = (":", "/")

Key = tuple[UUID, datetime]


def check_senml_pack(pack: list[dict[str, Any]]) -> bool:
    """Whether a pack of objects without ``device_id`` uses SenML labels at all.

    Raises ``unknown_format`` for what SenML forbids us to read: a ``bver``
    above 10 or a must-understand label (ending in ``_``).
    """
    uses_labels = False
    for rec in pack:
        keys = rec.keys()
        if keys <= SENML_LABELS:
            uses_labels = uses_labels or bool(keys)
        else:
            uses_labels = uses_labels or not keys.isdisjoint(SENML_LABELS)
            for label in keys - SENML_LABELS:
                if label.endswith("_"):
                    raise DecodeError(
                        "unknown_format", f"SenML must-understand label {label[:40]!r}"
                    )
        bver = rec.get("bver")
        if (type(bver) is int or type(bver) is float) and bver > SENML_MAX_VERSION:
            raise DecodeError("unknown_format", f"SenML version {bver} is newer than 10")
    return uses_labels


def _bad(code: str, i: int, label: str, problem: str) -> ValidationError:
    return ValidationError(code, f"SenML record {i} {label}: {problem}")


def _num(value: Any, i: int, label: str) -> float:
    t = type(value)
    if t is float:
        if isfinite(value):
            return float(value)
        raise _bad("invalid_value", i, label, "not a finite number")
    if t is int:
        try:
            return float(value)
        except OverflowError:
            raise _bad("value_out_of_range", i, label, "number too large") from None
    raise _bad("invalid_value", i, label, "expected a number")


def _str(value: Any, i: int, label: str) -> str:
    if type(value) is str:
        return value
    raise _bad("invalid_value", i, label, "expected a string")


def senml_rows(
    pack: list[dict[str, Any]], ctx: MessageContext, device_type: str
) -> tuple[list[TelemetryRow], int]:
    """Rows of one pack and the number of records dropped as in-message duplicates."""
    bn = ""
    bt = 0.0
    bu: str | None = None
    bv = 0.0
    bs = 0.0
    dev: UUID | None = None
    base_meta: dict[str, Any] = {}
    times: dict[float, datetime] = {}
    seen: set[tuple[int, str, datetime]] = set()
    rows: list[TelemetryRow] = []
    coords: list[tuple[int, str, float]] = []
    duplicates = 0

    for i, rec in enumerate(pack):
        if not SENML_BASE_LABELS.isdisjoint(rec):
            if "bn" in rec:
                bn = _str(rec["bn"], i, "bn")
                dev = None
            if "bt" in rec:
                bt = _num(rec["bt"], i, "bt")
            if "bu" in rec:
                bu = _str(rec["bu"], i, "bu")
            if "bv" in rec:
                bv = _num(rec["bv"], i, "bv")
            if "bs" in rec:
                bs = _num(rec["bs"], i, "bs")
            if "bver" in rec and type(rec["bver"]) is not int:
                raise _bad("invalid_value", i, "bver", "expected an integer")

        values = ("v" in rec) + ("vs" in rec) + ("vb" in rec) + ("vd" in rec)
        if values == 0 and "s" not in rec:
            continue  # base-only record: it only sets base fields
        if values > 1:
            raise _bad("invalid_value", i, "value", "more than one of v, vs, vb, vd")

        n = rec.get("n")
        unit = rec.get("u")
        unit = bu if unit is None else _str(unit, i, "u")
        if n is None or n == "":
            metric = unit
            resolved = bn
        else:
            metric = _str(n, i, "n")
            resolved = bn + metric
        if not metric:
            raise _bad("missing_field", i, "n", "no name and no unit to name the metric")
        if resolved and not valid_name(resolved):
            raise _bad("invalid_value", i, "name", f"{resolved[:60]!r} is not a valid name")
        if len(metric) > MAX_METRIC_NAME:
            raise _bad("value_out_of_range", i, "name", f"longer than {MAX_METRIC_NAME} chars")

        t = rec.get("t")
        when = bt if t is None else bt + _num(t, i, "t")
        at = times.get(when)
        if at is None:
            what = f"SenML record {i}"
            if when >= SENML_RELATIVE_LIMIT:
                at = ctx.epoch_time(when, what)
            else:  # relative to the Kafka record time, so a replay gives the same rows
                at = ctx.relative_time(when, what)
            times[when] = at

        value: float | None = None
        text: str | None = None
        kind: str | None = None
        if "v" in rec:
            value = rec["v"]
            if type(value) is not float or not isfinite(value):
                value = _num(value, i, "v")
            if bv:
                value += bv
                if not isfinite(value):
                    raise _bad("invalid_value", i, "v", "bv + v is not finite")
        elif "vs" in rec:
            text = _str(rec["vs"], i, "vs")
            if len(text) > MAX_METRIC_TEXT:
                raise _bad("value_out_of_range", i, "vs", f"longer than {MAX_METRIC_TEXT} chars")
            kind = "string"
        elif "vb" in rec:
            flag = rec["vb"]
            if type(flag) is not bool:
                raise _bad("invalid_value", i, "vb", "expected a boolean")
            value = 1.0 if flag else 0.0
            kind = "bool"
        elif "vd" in rec:
            text = _str(rec["vd"], i, "vd")
            if len(text) > MAX_METRIC_TEXT:
                raise _bad("value_out_of_range", i, "vd", f"longer than {MAX_METRIC_TEXT} chars")
            if BASE64_RE.fullmatch(text) is None:
                raise _bad("invalid_value", i, "vd", "not base64")
            kind = "data"
        else:
            value = bs + _num(rec["s"], i, "s")
            if not isfinite(value):
                raise _bad("invalid_value", i, "s", "bs + s is not finite")
            kind = "sum"

        if dev is None:
            dev, base_meta = _device(bn, ctx, i)
        key = (dev.int, metric, at)  # int: UUID's own __hash__ is Python code
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)

        meta = base_meta.copy()
        if unit is not None:
            meta["unit"] = unit
        if kind is not None:
            meta["kind"] = kind
        elif value is not None and (unit in _LATLON or n in _LATLON):
            coords.append((len(rows), str(unit if unit in _LATLON else n), value))
        rows.append(_row(TelemetryRow, (at, dev, device_type, metric, value, text, None, meta)))

    if not rows:
        raise ValidationError("missing_field", "SenML pack has no record with a value")
    if coords:
        rows, extra = _pair_positions(rows, coords)
        duplicates += extra
    return rows, duplicates


def _device(bn: str, ctx: MessageContext, i: int) -> tuple[UUID, dict[str, Any]]:
    """Device of the records from here on, and the metadata its rows share."""
    if bn:
        ref = bn[:-1] if bn.endswith(_DEVICE_SEPARATORS) else bn
        what = "SenML bn"
    else:
        ref = ctx.key or ""
        what = "Kafka key (device of a pack without bn)"
    if not ref:
        raise ValidationError("missing_field", f"SenML record {i}: no bn and no Kafka key")
    if "\x00" in ref:  # the key is not covered by the message's own NUL check
        raise ValidationError("nul_in_text", "NUL character in the Kafka key")
    uid, device_ref = device(ref, what)
    meta: dict[str, Any] = {"received_at": ctx.received_at}
    if device_ref is not None:
        meta["device_ref"] = device_ref
    return uid, meta


def _pair_positions(
    rows: list[TelemetryRow], coords: list[tuple[int, str, float]]
) -> tuple[list[TelemetryRow], int]:
    """Fold ``lat``/``lon`` records of one device and time into a location.

    The paired records are not stored; their position goes to every other row
    of that device and time, or to one ``position`` row when there is none.
    Lat/lon beyond the first pair of a group count as in-message duplicates.
    """
    groups: dict[Key, list[tuple[int, str, float]]] = {}
    for entry in coords:
        row = rows[entry[0]]
        groups.setdefault((row.device_id, row.time), []).append(entry)
    where: dict[Key, GeoPoint] = {}
    consumed: dict[int, Key] = {}
    extra = 0
    for key, members in groups.items():
        lat = next((v for _, role, v in members if role == "lat"), None)
        lon = next((v for _, role, v in members if role == "lon"), None)
        if lat is None or lon is None:
            continue  # an unpaired lat or lon stays a plain metric
        where[key] = point(lon, lat, "SenML lat/lon")
        for idx, _, _ in members:
            consumed[idx] = key
        extra += len(members) - 2
    if not where:
        return rows, 0
    with_others = {
        (r.device_id, r.time) for i, r in enumerate(rows) if i not in consumed
    } & where.keys()
    out: list[TelemetryRow] = []
    placed: set[Key] = set()
    for i, r in enumerate(rows):
        group = consumed.get(i)
        if group is not None:
            if group not in with_others and group not in placed:
                placed.add(group)
                meta = {k: v for k, v in r.metadata.items() if k != "unit"}
                out.append(
                    TelemetryRow(
                        r.time,
                        r.device_id,
                        r.device_type,
                        "position",
                        None,
                        None,
                        where[group],
                        meta,
                    )
                )
            continue
        loc = where.get((r.device_id, r.time))
        out.append(r if loc is None else r._replace(location=loc))
    return out, extra
