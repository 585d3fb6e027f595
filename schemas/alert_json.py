"""The ``alerts.json`` message: a canonical alert from a self-normalising
integration (docs/formats.md 4). Validation only; the decoder builds the row.
"""

from __future__ import annotations

import math
import unicodedata
from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from schemas.canonical import GeoPoint
from schemas.errors import FieldError
from schemas.timestamps import parse_timestamp

#: Sources that only the pipeline's own decoders may write; a producer using one
#: could forge or shadow alarm, Axis or CAP rows.
RESERVED_SOURCES: Final = frozenset({"alarm_system", "axis_mic", "axis_device", "cap"})
MAX_TITLE: Final = 255
MAX_EXTERNAL_ID: Final = 255
MAX_DESCRIPTION: Final = 65_536
DEFAULT_SEVERITY: Final = 3

_SOURCE_RE: Final = r"^[a-z][a-z0-9_.-]{0,99}$"
_TYPE_RE: Final = r"^[a-z][a-z0-9_]{0,49}$"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _coordinate(value: Any, name: str, limit: float) -> float:
    if not _is_number(value):
        raise FieldError("invalid_value", f"location.{name}: expected a number")
    number = float(value)
    if not math.isfinite(number):
        raise FieldError("invalid_value", f"location.{name}: not a finite number")
    if not -limit <= number <= limit:
        raise FieldError("value_out_of_range", f"location.{name} {number} outside ±{limit:g}")
    return number


def parse_point(value: Any) -> GeoPoint:
    """A GeoJSON ``Point`` (``[lon, lat(, alt)]``) or ``{"lon": …, "lat": …}``."""
    if not isinstance(value, dict):
        raise FieldError("invalid_value", "location: expected an object")
    if "type" in value:
        if value["type"] != "Point":
            raise FieldError("invalid_value", "location: only a GeoJSON Point is accepted")
        if "coordinates" not in value:
            raise FieldError("missing_field", "location.coordinates is required")
        coords = value["coordinates"]
        if not isinstance(coords, list) or len(coords) not in (2, 3):
            raise FieldError("invalid_value", "location.coordinates: expected [lon, lat(, alt)]")
        if len(coords) == 3:
            _coordinate(coords[2], "altitude", math.inf)
        return GeoPoint(_coordinate(coords[0], "lon", 180), _coordinate(coords[1], "lat", 90))
    for name in ("lon", "lat"):
        if value.get(name) is None:
            raise FieldError("missing_field", f"location.{name} is required")
    return GeoPoint(_coordinate(value["lon"], "lon", 180), _coordinate(value["lat"], "lat", 90))


class AlertJsonMessage(BaseModel):
    """One ``alerts.json`` object. Types are strict: ``2.0`` or ``"2"`` is not a severity."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    source: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=_SOURCE_RE)]
    external_id: str
    type: Annotated[str, StringConstraints(min_length=1, max_length=50, pattern=_TYPE_RE)]
    title: str
    severity: Annotated[int, Field(ge=1, le=5)] = DEFAULT_SEVERITY
    description: Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION)] | None = None
    location: GeoPoint | None = None
    address: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    raw_payload: dict[str, Any] | None = None
    occurred_at: datetime | None = None
    received_at: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        # JSON producers often send null for "not set"; a null required field
        # then reads as missing rather than as a type error.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data

    @field_validator("source")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_SOURCES:
            raise FieldError("invalid_value", f"source {value!r} is reserved for the pipeline")
        return value

    @field_validator("external_id")
    @classmethod
    def _external_id(cls, value: str) -> str:
        text = unicodedata.normalize("NFC", value).strip()
        if not text:
            raise FieldError("missing_field", "external_id is empty")
        if len(text) > MAX_EXTERNAL_ID:
            raise FieldError(
                "value_out_of_range", f"external_id longer than {MAX_EXTERNAL_ID} characters"
            )
        if any(unicodedata.category(ch) == "Cc" for ch in text):
            raise FieldError("invalid_value", "external_id contains a control character")
        return text

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        text = value.strip()
        if not text:
            raise FieldError("missing_field", "title is empty")
        if len(text) > MAX_TITLE:
            raise FieldError(
                "value_out_of_range", f"title longer than {MAX_TITLE} characters ({len(text)})"
            )
        return text

    @field_validator("location", mode="before")
    @classmethod
    def _location(cls, value: Any) -> GeoPoint:
        return parse_point(value)

    @field_validator("occurred_at", "received_at", mode="before")
    @classmethod
    def _timestamp(cls, value: Any, info: ValidationInfo) -> datetime:
        return parse_timestamp(value, str(info.field_name))
