"""Subset comparison as docs/formats.md section 8 asks: listed keys only, times
as instants, coordinates to 1e-6."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from uuid import UUID

from pipeline.decode import parse_timestamp
from schemas.canonical import GeoPoint


def _as_instant(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and "T" in value:
        try:
            return parse_timestamp(value, "t")
        except Exception:
            return None
    return None


def mismatches(expected: Any, actual: Any, path: str = "") -> list[str]:
    if isinstance(actual, GeoPoint):
        actual = {"lon": actual.lon, "lat": actual.lat}
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected object, got {actual!r}"]
        out: list[str] = []
        for k, v in expected.items():
            if k not in actual:
                out.append(f"{path}.{k}: missing")
            else:
                out.extend(mismatches(v, actual[k], f"{path}.{k}"))
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {expected!r}, got {actual!r}"]
        return [
            m
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for m in mismatches(e, a, f"{path}[{i}]")
        ]
    exp_t, act_t = _as_instant(expected), _as_instant(actual)
    if exp_t is not None and act_t is not None:
        return [] if exp_t == act_t else [f"{path}: {exp_t} != {act_t}"]
    if (
        isinstance(expected, float | int)
        and not isinstance(expected, bool)
        and isinstance(actual, float | int)
    ):
        return (
            []
            if math.isclose(expected, actual, abs_tol=1e-6)
            else [f"{path}: {expected} != {actual}"]
        )
    if isinstance(actual, UUID):
        actual = str(actual)
    return [] if expected == actual else [f"{path}: expected {expected!r}, got {actual!r}"]
