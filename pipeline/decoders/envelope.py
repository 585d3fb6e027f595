"""Steps every decoder shares (docs/formats.md 0.1): envelope checks, strict
text and JSON, timestamps, NUL, external ids, device UUIDs.

All functions are pure and raise :mod:`pipeline.errors` input errors.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
import pydantic

from pipeline.errors import DecodeError, ValidationError
from schemas.errors import FieldError
from schemas.intents import Discard
from schemas.records import RawRecord
from schemas.timestamps import parse_timestamp as _parse_timestamp

DEFAULT_MAX_MESSAGE_BYTES: Final = 1_048_576
MAX_JSON_DEPTH: Final = 32
MAX_EXTERNAL_ID: Final = 255
#: uuid5(NAMESPACE_URL, "https://eriop.invalid/ns/device"); must never change.
NS_DEVICE: Final = uuid.UUID("891b20ae-1d15-5f43-83a2-77ea0db59f7a")
_UUID_RE: Final = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


def envelope(record: RawRecord, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> bytes | Discard:
    """Steps 1-2: tombstones are skipped, empty values and oversize rejected."""
    value = record.value
    if value is None:
        return Discard("tombstone")
    if len(value) == 0:
        raise DecodeError("unknown_format", "empty message value")
    if len(value) > max_bytes:
        raise DecodeError(
            "oversize", f"value of {len(value)} bytes exceeds max_message_bytes {max_bytes}"
        )
    return value


def to_text(data: bytes) -> str:
    """Step 3: strict UTF-8, a leading BOM dropped."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError("not_utf8", f"invalid UTF-8 at byte {exc.start}") from None
    return text[1:] if text.startswith("\ufeff") else text


def _reject_constant(name: str) -> Any:
    raise ValidationError("invalid_value", f"JSON constant {name} is not allowed")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise DecodeError("not_json", f"duplicate JSON key {k[:40]!r}")
        out[k] = v
    return out


def _nesting_depth_exceeds(text: str, limit: int) -> bool:
    """Bracket depth outside strings, checked before parsing so a deep document
    cannot exhaust the parser's recursion."""
    depth = 0
    in_str = False
    escape = False
    for ch in text:
        if in_str:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def parse_json(text: str) -> Any:
    """Step 4 for JSON: strict (no duplicate keys, depth <= 32, no NaN/Infinity)."""
    brackets = text.count("[") + text.count("{")
    if brackets > MAX_JSON_DEPTH and _nesting_depth_exceeds(text, MAX_JSON_DEPTH):
        raise DecodeError("not_json", f"JSON nesting deeper than {MAX_JSON_DEPTH}")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise DecodeError("not_json", f"invalid JSON: {exc.msg} at char {exc.pos}") from None
    except RecursionError:
        raise DecodeError("not_json", "JSON nesting too deep") from None


def check_no_nul(value: Any, where: str = "message") -> None:
    """U+0000 anywhere in a string (or a key) is ``nul_in_text``."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "\x00" in v:
                raise ValidationError("nul_in_text", f"NUL character in {where}")
        elif isinstance(v, dict):
            for k, item in v.items():
                if "\x00" in k:
                    raise ValidationError("nul_in_text", f"NUL character in a key of {where}")
                stack.append(item)
        elif isinstance(v, list):
            stack.extend(v)


def parse_timestamp(value: Any, field: str) -> datetime:
    """Text with an offset, or epoch seconds / milliseconds (>= 1e11 is ms)."""
    try:
        return _parse_timestamp(value, field)
    except FieldError as exc:
        raise ValidationError(exc.error_code, exc.reason) from None


def iso_utc(dt: datetime) -> str:
    """ISO 8601 in UTC with ``Z``; microseconds only when present.

    orjson writes exactly that (RFC 3339) at a third of ``isoformat``'s cost
    (tests/unit/test_hot_path_helpers.py compares the two).
    """
    return orjson.dumps(dt.astimezone(UTC), option=orjson.OPT_UTC_Z)[1:-1].decode()


# A batch shares one pipeline clock reading and its records mostly share the
# second of their Kafka time, so both derived values are kept for the next call.
_Bounds = tuple[datetime, datetime, float, float]
_last_window: tuple[tuple[datetime, float, float], _Bounds] | None = None
_last_second: tuple[int, str] = (-1, "")
_last_milli: tuple[int, str] = (-1, "")


def window(now: datetime, max_age_s: float, max_future_s: float) -> _Bounds:
    """The accepted time window around ``now``, as datetimes and epoch seconds."""
    global _last_window
    key = (now, max_age_s, max_future_s)
    if _last_window is not None and _last_window[0] == key:
        return _last_window[1]
    lo = now - timedelta(seconds=max_age_s)
    hi = now + timedelta(seconds=max_future_s)
    bounds = (lo, hi, lo.timestamp(), hi.timestamp())
    _last_window = (key, bounds)
    return bounds


def received_at_iso(timestamp_ms: int) -> str:
    """``iso_utc`` of a Kafka timestamp, without rebuilding it for every record
    (under load, records produced in the same millisecond arrive together)."""
    global _last_second, _last_milli
    if _last_milli[0] == timestamp_ms:
        return _last_milli[1]
    second, milli = divmod(timestamp_ms, 1000)
    if _last_second[0] != second:
        _last_second = (second, iso_utc(datetime.fromtimestamp(second, tz=UTC))[:-1])
    base = _last_second[1]
    text = f"{base}.{milli:03d}000Z" if milli else base + "Z"
    _last_milli = (timestamp_ms, text)
    return text


def external_id(raw: str) -> str:
    """NFC-normalised and trimmed; above 255 chars the ``sha256:`` form."""
    text = unicodedata.normalize("NFC", raw).strip()
    if len(text) > MAX_EXTERNAL_ID:
        return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
    return text


def cut(text: str, limit: int) -> str:
    """Cut generated text at a code-point boundary."""
    return text if len(text) <= limit else text[:limit]


def device_uuid(ref: str) -> tuple[uuid.UUID, str | None]:
    """docs/formats.md 5.4: a canonical UUID lower-cased, anything else uuid5.

    Returns the UUID and the original reference when it was mapped (for
    ``metadata.device_ref``), else None.
    """
    if _UUID_RE.match(ref):
        return uuid.UUID(ref.lower()), None
    norm = unicodedata.normalize("NFC", ref).strip()
    return uuid.uuid5(NS_DEVICE, norm), norm


_PYDANTIC_CODES: Final = {
    "missing": "missing_field",
    "too_long": "value_out_of_range",
    "too_short": "missing_field",
    "string_too_long": "value_out_of_range",
    "string_too_short": "missing_field",
    "greater_than": "value_out_of_range",
    "greater_than_equal": "value_out_of_range",
    "less_than": "value_out_of_range",
    "less_than_equal": "value_out_of_range",
    "finite_number": "invalid_value",
}


def from_pydantic(exc: pydantic.ValidationError, what: str) -> ValidationError:
    """Translate the first pydantic error into our code and a reason naming the field.

    A custom validator may raise :class:`ValidationError` itself; pydantic wraps
    it, and it is unwrapped here so its own code wins.
    """
    err = exc.errors()[0]
    ctx_error = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_error, ValidationError):
        return ctx_error
    if isinstance(ctx_error, FieldError):
        return ValidationError(ctx_error.error_code, ctx_error.reason)
    loc = ".".join(str(p) for p in err["loc"]) or what
    code = _PYDANTIC_CODES.get(err["type"], "invalid_value")
    return ValidationError(code, f"{what}.{loc}: {err['msg']}")
