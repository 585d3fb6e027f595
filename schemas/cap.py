"""Common Alerting Protocol 1.2 / 1.1 as the ``alerts.cap`` decoder reads it
(docs/formats.md 3). The XML is flattened into plain dicts first; these models
check required elements, the CAP enumerations and the time formats.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from schemas.errors import FieldError
from schemas.timestamps import parse_timestamp

CAP_NAMESPACES: Final = frozenset(
    {"urn:oasis:names:tc:emergency:cap:1.2", "urn:oasis:names:tc:emergency:cap:1.1"}
)

CapStatus = Literal["Actual", "Exercise", "System", "Test", "Draft"]
CapMsgType = Literal["Alert", "Update", "Cancel", "Ack", "Error"]
CapScope = Literal["Public", "Restricted", "Private"]
CapCategory = Literal[
    "Geo", "Met", "Safety", "Security", "Rescue", "Fire",
    "Health", "Env", "Transport", "Infra", "CBRNE", "Other",
]  # fmt: skip
CapUrgency = Literal["Immediate", "Expected", "Future", "Past", "Unknown"]
CapSeverity = Literal["Extreme", "Severe", "Moderate", "Minor", "Unknown"]
CapCertainty = Literal["Observed", "Likely", "Possible", "Unlikely", "Unknown"]

#: CAP ``category`` -> alert ``type`` (docs/formats.md 3.3)
CATEGORY_TYPES: Final[dict[str, str]] = {
    "Geo": "geophysical",
    "Met": "weather",
    "Safety": "safety",
    "Security": "security",
    "Rescue": "rescue",
    "Fire": "fire",
    "Health": "health",
    "Env": "environmental",
    "Transport": "transport",
    "Infra": "infrastructure",
    "CBRNE": "cbrne",
    "Other": "other",
}

# Characters CAP forbids in identifier and sender: they would break the
# space-separated "sender,identifier,sent" triplets of <references>.
_FORBIDDEN_ID_CHARS: Final = frozenset(", <&")


def _cap_time(value: Any, info: ValidationInfo) -> datetime | None:
    if value is None:
        return None
    return parse_timestamp(value, str(info.field_name))


class _CapModel(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")


class CapHeader(_CapModel):
    """The ``<alert>`` elements every message needs, whatever its type."""

    identifier: str
    sender: str
    sent: datetime
    status: CapStatus
    msg_type: CapMsgType = Field(alias="msgType")
    scope: CapScope
    references: str | None = None

    @field_validator("identifier", "sender")
    @classmethod
    def _reference_safe(cls, value: str, info: ValidationInfo) -> str:
        if any(ch in _FORBIDDEN_ID_CHARS or ch.isspace() for ch in value):
            raise FieldError(
                "invalid_value", f"{info.field_name} contains a space, comma, '<' or '&'"
            )
        return value

    @field_validator("sent", mode="before")
    @classmethod
    def _sent(cls, value: Any, info: ValidationInfo) -> datetime | None:
        return _cap_time(value, info)


class CapGeocode(_CapModel):
    value_name: str = Field(alias="valueName")
    value: str


class CapArea(_CapModel):
    """One ``<area>``: shapes stay text here and are parsed with the geometry."""

    area_desc: str | None = Field(default=None, alias="areaDesc")
    polygons: tuple[str, ...] = ()
    circles: tuple[str, ...] = ()
    geocodes: tuple[CapGeocode, ...] = ()


class CapInfo(_CapModel):
    """The ``<info>`` block an alert is built from."""

    language: str = "en-US"
    categories: tuple[CapCategory, ...] = Field(alias="category", min_length=1)
    event: str
    urgency: CapUrgency
    severity: CapSeverity
    certainty: CapCertainty
    headline: str | None = None
    description: str | None = None
    instruction: str | None = None
    onset: datetime | None = None
    effective: datetime | None = None
    expires: datetime | None = None
    areas: tuple[CapArea, ...] = Field(default=(), alias="area")

    @field_validator("certainty", mode="before")
    @classmethod
    def _legacy_certainty(cls, value: Any) -> Any:
        # CAP 1.0 "Very Likely" was folded into "Likely" by CAP 1.1.
        return "Likely" if value == "Very Likely" else value

    @field_validator("onset", "effective", "expires", mode="before")
    @classmethod
    def _times(cls, value: Any, info: ValidationInfo) -> datetime | None:
        return _cap_time(value, info)


def parse_references(text: str) -> list[tuple[str, str]]:
    """``sender,identifier,sent`` triplets -> (sender, identifier) pairs.

    ``sent`` is not needed to name the target, so a pair without it is accepted.
    """
    pairs: list[tuple[str, str]] = []
    for triplet in text.split():
        parts = triplet.split(",")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise FieldError(
                "invalid_value", f"references: {triplet[:80]!r} is not sender,identifier,sent"
            )
        pairs.append((parts[0], parts[1]))
    return pairs
