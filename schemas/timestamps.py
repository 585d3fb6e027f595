"""Timestamps as every inbound format writes them (docs/formats.md 0.1)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, Final

from schemas.errors import FieldError

#: a number at least this large is epoch milliseconds, else epoch seconds
EPOCH_MS_THRESHOLD: Final = 10**11
#: epoch milliseconds this large are past datetime's year 9999 in any reading
_EPOCH_BEYOND_DATETIME: Final = 10**18


def parse_timestamp(value: Any, field: str) -> datetime:
    """Text with an offset, or epoch seconds / milliseconds (>= 1e11 is ms)."""
    if isinstance(value, bool):
        raise FieldError("invalid_value", f"{field}: a boolean is not a timestamp")
    if isinstance(value, int | float):
        if type(value) is int and abs(value) >= _EPOCH_BEYOND_DATETIME:
            # also beyond a float: isfinite would raise OverflowError on it
            raise FieldError("value_out_of_range", f"{field}: epoch out of range")
        if not math.isfinite(value):
            raise FieldError("invalid_value", f"{field}: not a finite number")
        seconds = value / 1000 if abs(value) >= EPOCH_MS_THRESHOLD else value
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise FieldError("value_out_of_range", f"{field}: epoch out of range") from None
    if isinstance(value, str):
        text = value.strip()
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise FieldError("invalid_value", f"{field}: unparseable time {text[:40]!r}") from None
        if dt.tzinfo is None:
            raise FieldError("invalid_value", f"{field}: time has no UTC offset")
        return dt.astimezone(UTC)
    raise FieldError("invalid_value", f"{field}: expected a timestamp")
