"""The sample messages of docs/formats.md (tests/fixtures/samples) and how a test
compares what came out with what a sample line expects: one copy, shared by the
unit and the integration tests.

The comparison is the one of docs/formats.md section 8: the keys listed only,
times as instants, numbers and coordinates to 1e-6. It is the strict reading:
booleans and nulls by identity, numbers only against numbers (never a boolean),
lists by length and element, UUIDs as text, a GeoPoint as ``{lon, lat}``.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple
from uuid import UUID

import pytest

from schemas.canonical import CanonicalAlert, GeoPoint, LocationRow, TelemetryRow
from schemas.records import RawRecord

SAMPLES = Path(__file__).parent / "fixtures" / "samples"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: absolute tolerance for numbers and coordinates (docs/formats.md 8)
TOLERANCE = 1e-6
_ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


# --- the files --------------------------------------------------------------------


def load_samples(topic: str) -> list[dict[str, Any]]:
    """The lines of ``<topic>.jsonl``, in order; blank lines are skipped."""
    text = (SAMPLES / f"{topic}.jsonl").read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def load_fixtures() -> dict[str, Any]:
    """fixtures.json: the ``config`` and the ``resources`` the samples assume."""
    return json.loads((SAMPLES / "fixtures.json").read_text("utf-8"))


# --- times ------------------------------------------------------------------------


def parse_instant(text: str) -> datetime:
    """ISO 8601 text with a UTC offset (``Z`` allowed) as an aware datetime."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset")
    return value


def epoch_ms(when: datetime) -> int:
    """Milliseconds since the epoch, as a Kafka timestamp (exact, no float)."""
    return (when - EPOCH) // timedelta(milliseconds=1)


# --- a line as the consumer reads it ----------------------------------------------


def record_from_line(line: dict[str, Any], offset: int = 0) -> RawRecord:
    """The Kafka record of a sample line: its topic, partition 0, ``offset``; the
    Kafka timestamp from ``timestamp``; ``value`` (UTF-8, null a tombstone) or
    ``value_b64``; ``key`` as UTF-8; ``headers`` as an object or a list of pairs."""
    if "value_b64" in line:
        value: bytes | None = base64.b64decode(line["value_b64"])
    else:
        value = None if line["value"] is None else line["value"].encode("utf-8")
    key = line.get("key")
    headers = line.get("headers") or {}
    pairs = headers.items() if isinstance(headers, dict) else headers
    return RawRecord(
        topic=line["topic"],
        partition=0,
        offset=offset,
        timestamp_ms=epoch_ms(parse_instant(line["timestamp"])),
        key=None if key is None else key.encode("utf-8"),
        value=value,
        headers=tuple((str(k), str(v).encode("utf-8")) for k, v in pairs),
    )


class SampleRecord(NamedTuple):
    """One line of a sample file, ready to decode."""

    record: RawRecord
    #: the line's ``timestamp``: the clock the sample is decoded at
    now: datetime
    expect: dict[str, Any]
    #: ``line N`` (from 1), for assertion messages
    where: str


def sample_records(topic: str) -> list[SampleRecord]:
    """The lines of ``<topic>.jsonl`` as records at offsets 0, 1, ... in order."""
    return [
        SampleRecord(
            record_from_line(line, offset),
            parse_instant(line["timestamp"]),
            line["expect"],
            f"line {offset + 1}",
        )
        for offset, line in enumerate(load_samples(topic))
    ]


# --- comparing ----------------------------------------------------------------------


def _instant(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else None
    if isinstance(value, str):
        try:
            return parse_instant(value)
        except ValueError:
            return None
    return None


def mismatches(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where ``actual`` differs from ``expected`` (docs/formats.md 8); [] if nowhere."""
    if isinstance(actual, GeoPoint):
        actual = {"lon": actual.lon, "lat": actual.lat}
    elif isinstance(actual, UUID):
        actual = str(actual)
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {actual!r}"]
        out: list[str] = []
        for key, value in expected.items():
            if key not in actual:
                out.append(f"{path}.{key}: missing")
            else:
                out.extend(mismatches(value, actual[key], f"{path}.{key}"))
        return out
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: expected a list, got {actual!r}"]
        if len(actual) != len(expected):
            return [f"{path}: length {len(actual)} != {len(expected)}"]
        return [
            m
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for m in mismatches(e, a, f"{path}[{i}]")
        ]
    if isinstance(expected, bool) or expected is None:
        return [] if actual is expected else [f"{path}: expected {expected!r}, got {actual!r}"]
    if isinstance(expected, int | float):
        if isinstance(actual, bool) or not isinstance(actual, int | float):
            return [f"{path}: expected the number {expected!r}, got {actual!r}"]
        return [] if abs(actual - expected) <= TOLERANCE else [f"{path}: {actual} != {expected}"]
    if isinstance(expected, datetime) or (isinstance(expected, str) and _ISO_RE.match(expected)):
        want, got = _instant(expected), _instant(actual)
        if want is None or got is None:
            return [f"{path}: expected the instant {expected!r}, got {actual!r}"]
        return [] if got == want else [f"{path}: {got} != {want}"]
    return [] if actual == expected else [f"{path}: expected {expected!r}, got {actual!r}"]


def assert_subset(expected: Any, actual: Any, where: str = "") -> None:
    """Assert that ``actual`` has what ``expected`` lists, as :func:`mismatches` reads it."""
    problems = mismatches(expected, actual, where)
    assert not problems, "; ".join(problems)


def alert_view(alert: CanonicalAlert) -> dict[str, Any]:
    """A decoded alert as a sample's ``expect.alert`` describes it."""
    view = alert.model_dump()
    loc = alert.location
    view["location"] = None if loc is None else {"lon": loc.lon, "lat": loc.lat}
    return view


def assert_row(
    row: TelemetryRow | LocationRow, want: dict[str, Any], *, tol: float = TOLERANCE
) -> None:
    """A decoded telemetry or location row against a sample's expected row: each
    field listed; ``time`` as an instant; UUIDs as text; ``location`` (or null) as
    lon/lat to 1e-6; ``metadata`` by the keys listed, each equal; other numbers to
    ``tol``; the rest equal."""
    for name, expected in want.items():
        got = getattr(row, name)
        says = f"{name}: {got!r} against {expected!r}"
        if name == "time":
            assert got == parse_instant(expected), says
        elif isinstance(got, UUID):
            assert str(got) == expected, says
        elif name == "location":
            if expected is None:
                assert got is None, says
            else:
                assert got is not None, says
                assert got.lon == pytest.approx(expected["lon"], abs=TOLERANCE), says
                assert got.lat == pytest.approx(expected["lat"], abs=TOLERANCE), says
        elif name == "metadata":
            for key, value in expected.items():
                assert got[key] == value, f"metadata.{key}: {got.get(key)!r} against {value!r}"
        elif isinstance(expected, float | int) and not isinstance(expected, bool):
            assert got == pytest.approx(expected, abs=tol), says
        else:
            assert got == expected, says
