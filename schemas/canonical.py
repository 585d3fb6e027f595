"""Canonical records: what every inbound format becomes before it is written.

``CanonicalAlert`` is a pydantic model (alerts are few and must be right).
``TelemetryRow`` and ``LocationFix`` sit on the volume path and are built from
input that was already validated, so they are plain tuples that the COPY sinks
can take without another validation pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

AlertStatus = Literal["new", "processing", "acknowledged", "converted", "dismissed", "expired"]


class GeoPoint(NamedTuple):
    """WGS 84 point, longitude first as in PostGIS ``ST_MakePoint``."""

    lon: float
    lat: float


class CanonicalAlert(BaseModel):
    """One row of the ``alerts`` table, as ingestion fills it (docs/formats.md 0.2)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    source: str = Field(min_length=1, max_length=100)
    external_id: str = Field(min_length=1, max_length=255)
    type: str = Field(min_length=1, max_length=50)
    severity: int = Field(ge=1, le=5)
    status: AlertStatus = "new"
    title: str = Field(min_length=1, max_length=255)
    description: str | None = None
    location: GeoPoint | None = None
    address: dict[str, Any] | None = None
    raw_payload: dict[str, Any]
    metadata: dict[str, Any]
    received_at: datetime
    processed_at: datetime


class TelemetryRow(NamedTuple):
    """One row of ``telemetry``; field order is the COPY column order."""

    time: datetime
    device_id: UUID
    device_type: str
    metric_name: str
    metric_value: float | None
    metric_text: str | None
    location: GeoPoint | None
    metadata: dict[str, Any]


class LocationFix(NamedTuple):
    """A position report before resource resolution and plausibility checks.

    ``resource_ref`` is what the message named (a UUID text or an identifier);
    the GPS normaliser resolves it to ``resources.id``. A tuple, so that the
    decoders can build one per fix as a plain tuple; every field is given.
    """

    time: datetime
    resource_ref: str
    lat: float
    lon: float
    speed: float | None
    heading: float | None
    accuracy: float | None
    source: str
    metadata: dict[str, Any]
    flags: list[str]


class LocationRow(NamedTuple):
    """One row of ``location_history``; field order is the COPY column order."""

    time: datetime
    resource_id: UUID
    resource_type: str
    location: GeoPoint
    speed: float | None
    heading: float | None
    accuracy: float | None
    source: str
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A ``resources`` row of type ``equipment`` whose identifier is a serial."""

    resource_id: UUID
    name: str
    location: GeoPoint | None
    agency_id: UUID | None
    updated_at: datetime
