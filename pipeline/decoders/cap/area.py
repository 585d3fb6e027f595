"""CAP ``<area>`` geometry (docs/formats.md 3.4): one representative point for
``alerts.location`` and a GeoJSON copy of every area for the map.

CAP writes ``lat,lon`` (latitude first); GeoJSON and PostGIS want longitude
first, so every pair is swapped on the way in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shapely.geometry import Point, Polygon

from pipeline.errors import ValidationError
from schemas.canonical import GeoPoint
from schemas.cap import CapArea

LonLat = tuple[float, float]


@dataclass(frozen=True, slots=True)
class AreaSummary:
    """What the areas of one ``info`` contribute to the alert."""

    location: GeoPoint | None
    geojson: dict[str, Any]
    geocodes: list[dict[str, str]] = field(default_factory=list)
    ring_closed: bool = False


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValidationError("invalid_value", f"{what}: {text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise ValidationError("invalid_value", f"{what}: not a finite number")
    return value


def parse_pair(text: str, what: str) -> LonLat:
    """A CAP ``lat,lon`` pair -> (lon, lat), range-checked."""
    parts = text.split(",")
    if len(parts) != 2:
        raise ValidationError("invalid_value", f"{what}: {text[:40]!r} is not lat,lon")
    lat = _number(parts[0], what)
    lon = _number(parts[1], what)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValidationError("value_out_of_range", f"{what}: {lat},{lon} outside WGS 84 range")
    return lon, lat


def parse_polygon(text: str) -> tuple[list[LonLat], bool]:
    """A CAP polygon -> a closed ring in (lon, lat) order, and whether this
    decoder had to close it."""
    ring = [parse_pair(token, "polygon") for token in text.split()]
    if len(set(ring)) < 3:
        raise ValidationError("value_out_of_range", "polygon has fewer than 3 distinct points")
    closed = ring[0] != ring[-1]
    if closed:
        ring.append(ring[0])
    if Polygon(ring).area == 0:
        raise ValidationError("value_out_of_range", "polygon has no area (collinear points)")
    return ring, closed


def parse_circle(text: str) -> tuple[LonLat, float]:
    """A CAP circle ``lat,lon radius_km`` -> ((lon, lat), radius_km)."""
    parts = text.split()
    if len(parts) != 2:
        raise ValidationError("invalid_value", f"circle: {text[:60]!r} is not 'lat,lon radius'")
    centre = parse_pair(parts[0], "circle")
    radius = _number(parts[1], "circle radius")
    if radius < 0:
        raise ValidationError("value_out_of_range", f"circle radius {radius} is negative")
    return centre, radius


def representative_point(ring: Sequence[LonLat]) -> GeoPoint:
    """The area-weighted centroid when it lies inside the polygon (a convex
    area), else a point guaranteed inside (a crescent's centroid is not)."""
    polygon = Polygon(ring)
    point: Point = polygon.centroid
    if point.is_empty or not polygon.contains(point):
        point = polygon.representative_point()
    return GeoPoint(float(point.x), float(point.y))


def _feature(geometry: dict[str, Any] | None, properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def summarise_areas(areas: Sequence[CapArea]) -> AreaSummary:
    """Location, GeoJSON FeatureCollection and geocodes of one ``info``'s areas."""
    features: list[dict[str, Any]] = []
    geocodes: list[dict[str, str]] = []
    first_polygon: list[LonLat] | None = None
    first_circle: LonLat | None = None
    any_closed = False
    for area in areas:
        base: dict[str, Any] = {"areaDesc": area.area_desc}
        shaped = False
        for text in area.polygons:
            ring, closed = parse_polygon(text)
            any_closed = any_closed or closed
            if first_polygon is None:
                first_polygon = ring
            coords = [[lon, lat] for lon, lat in ring]
            features.append(_feature({"type": "Polygon", "coordinates": [coords]}, dict(base)))
            shaped = True
        for text in area.circles:
            (lon, lat), radius = parse_circle(text)
            if first_circle is None:
                first_circle = (lon, lat)
            geometry = {"type": "Point", "coordinates": [lon, lat]}
            features.append(_feature(geometry, {**base, "radius_km": radius}))
            shaped = True
        codes = [{"valueName": g.value_name, "value": g.value} for g in area.geocodes]
        geocodes.extend(codes)
        if not shaped:
            # Keeps every area listed even when only geocodes describe it.
            features.append(_feature(None, {**base, "geocodes": codes}))

    location: GeoPoint | None = None
    if first_polygon is not None:
        location = representative_point(first_polygon)
    elif first_circle is not None:
        location = GeoPoint(*first_circle)
    return AreaSummary(
        location=location,
        geojson={"type": "FeatureCollection", "features": features},
        geocodes=geocodes,
        ring_closed=any_closed,
    )
