"""The binary COPY encoder: the C extension writes what its Python twin writes,
byte for byte, and both refuse what neither can encode, naming where.

What those bytes mean to PostgreSQL, against asyncpg's own codecs, is
tests/integration/test_copy_binary_pg.py.
"""

from __future__ import annotations

import struct
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from asyncpg.pgproto import pgproto
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.clients.postgres import encode_point, encode_timestamptz
from pipeline.errors import WriteRejected
from pipeline.sinks.postgres import _copy_binary, copy_binary, timeseries
from pipeline.sinks.postgres.copy_binary import (
    FLOAT,
    JSONB,
    POINT,
    TEXT,
    TIME,
    UUID_,
    encode_rows_python,
)
from pipeline.sinks.postgres.timeseries import (
    LOCATION_COLUMNS,
    LOCATION_KINDS,
    TELEMETRY_COLUMNS,
    TELEMETRY_KINDS,
)
from schemas.canonical import GeoPoint, LocationRow, TelemetryRow

KINDS = (TIME, UUID_, TEXT, FLOAT, POINT, JSONB)
NAMES = {TIME: "t", UUID_: "u", TEXT: "s", FLOAT: "f", POINT: "p", JSONB: "j"}
ID = uuid.UUID("0b7e5f0e-8f7e-4c61-9c43-6a1a5b0c7d11")
T = datetime(2026, 12, 7, 23, 40, 1, 250001, tzinfo=UTC)


def both(rows: list[tuple[Any, ...]], kinds: tuple[int, ...]) -> bytes:
    names = [f"c{i}" for i in range(len(kinds))]
    ours = _copy_binary.encode_rows(rows, kinds, names)
    assert ours == encode_rows_python(rows, kinds, names)
    return ours


def test_the_store_uses_the_compiled_encoder() -> None:
    assert copy_binary.compiled_encoder() is _copy_binary.encode_rows
    assert timeseries.ENCODER is _copy_binary.encode_rows


def test_a_location_row_byte_by_byte() -> None:
    row = LocationRow(T, ID, "vehicle", GeoPoint(24.94, 60.17), 12.5, None, 5, "gps", {})
    data = both([row], LOCATION_KINDS)
    micros = (T - datetime(2000, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    expected = (
        struct.pack(">h", 9)
        + struct.pack(">iq", 8, micros)
        + struct.pack(">i", 16) + ID.bytes
        + struct.pack(">i", 7) + b"vehicle"
        + struct.pack(">i", 25) + struct.pack("<BIIdd", 1, 0x20000001, 4326, 24.94, 60.17)
        + struct.pack(">id", 8, 12.5)
        + b"\xff\xff\xff\xff"
        + struct.pack(">id", 8, 5.0)
        + struct.pack(">i", 3) + b"gps"
        + struct.pack(">i", 3) + b"\x01{}"
    )  # fmt: skip
    assert data == expected


def test_a_telemetry_row_with_metadata_and_nulls() -> None:
    row = TelemetryRow(T, ID, "probe", "temp", None, "ok", None, {"unit": "Cel", "n": [1, 2]})
    data = both([row], TELEMETRY_KINDS)
    meta = b'\x01{"unit":"Cel","n":[1,2]}'
    assert data.endswith(b"\xff\xff\xff\xff" + struct.pack(">i", len(meta)) + meta)
    assert data.startswith(struct.pack(">h", 8))
    assert len(LOCATION_KINDS) == len(LOCATION_COLUMNS)
    assert len(TELEMETRY_KINDS) == len(TELEMETRY_COLUMNS)


EDGE_TIMES: list[object] = [
    datetime(2000, 1, 1, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2000, 2, 29, tzinfo=UTC),
    datetime(2100, 3, 1, tzinfo=UTC),
    datetime(1900, 2, 28, 12, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),  # asyncpg's minus infinity, at the same instant
    datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # and its infinity
    datetime(9999, 12, 31, 23, 59, 59, 999998, tzinfo=UTC),
    datetime(2026, 12, 3, 19, 42, 11, 52728, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2026, 10, 25, 3, 30, fold=1, tzinfo=ZoneInfo("Europe/Helsinki")),
    datetime(2026, 12, 3, 19, 42, 11, 52728),  # naive: local time, as in asyncpg
    date(2026, 12, 3),
    datetime.max,
    datetime.min,
]


@pytest.mark.parametrize("value", EDGE_TIMES, ids=str)
def test_times_mean_what_the_pools_codec_means(value: object) -> None:
    data = both([(value,)], (TIME,))
    (micros,) = struct.unpack(">q", data[6:])
    assert micros == encode_timestamptz(value)[0]  # type: ignore[arg-type]


def _value(kind: int) -> st.SearchStrategy[object]:
    zones = st.sampled_from(
        [UTC, UTC, UTC, timezone(timedelta(hours=-3, minutes=-30)), ZoneInfo("Europe/Helsinki")]
    )
    json = st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**64 - 1)
        | st.text()
        | st.floats(allow_nan=False, allow_infinity=False),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=6,
    )
    by_kind: dict[int, st.SearchStrategy[object]] = {
        TIME: st.datetimes(timezones=zones) | st.datetimes() | st.sampled_from(EDGE_TIMES),
        UUID_: st.uuids().flatmap(
            lambda u: st.sampled_from([u, pgproto.UUID(u.bytes), str(u)])  # type: ignore[arg-type]
        ),
        TEXT: st.text(),
        FLOAT: st.floats() | st.integers(-(2**53), 2**53) | st.booleans(),
        POINT: st.tuples(st.floats(), st.floats()).flatmap(
            lambda p: st.sampled_from([p, GeoPoint(*p), list(p)])
        ),
        JSONB: st.just({}) | json,
    }
    return st.none() | by_kind[kind]


@st.composite
def tables(draw: st.DrawFn) -> tuple[tuple[int, ...], list[tuple[object, ...]]]:
    kinds = tuple(draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=9)))
    rows = draw(
        st.lists(st.tuples(*(_value(k) for k in kinds)), max_size=12)  # type: ignore[arg-type]
    )
    return kinds, rows


@settings(max_examples=1500, deadline=None)
@given(tables())
def test_the_extension_writes_what_its_python_twin_writes(
    table: tuple[tuple[int, ...], list[tuple[object, ...]]],
) -> None:
    kinds, rows = table
    names = [NAMES[k] for k in kinds]
    try:
        expected: bytes | str = encode_rows_python(rows, kinds, names)
    except WriteRejected as exc:
        expected = str(exc).split(":")[0]
    try:
        got: bytes | str = _copy_binary.encode_rows(rows, kinds, names)
    except WriteRejected as exc:
        got = str(exc).split(":")[0]
    assert got == expected


def test_points_are_the_pools_ewkb() -> None:
    for point in [GeoPoint(1.5, -2.25), (0, 0), [179.9, 89.9]]:
        data = both([(point,)], (POINT,))
        assert data[6:] == encode_point(point)  # type: ignore[arg-type]


class _MyUUID(uuid.UUID):
    """A UUID of another class: the extension takes its bytes, not its int."""


@pytest.mark.parametrize(
    "value",
    [uuid.UUID(int=0), uuid.UUID(int=1), uuid.UUID(int=2**128 - 1), ID, _MyUUID(int=2**127 + 5)],
    ids=str,
)
def test_uuids_are_their_sixteen_bytes(value: uuid.UUID) -> None:
    # a uuid.UUID is written from its int in C; anything else from its bytes
    assert both([(value,)], (UUID_,))[2:] == struct.pack(">i", 16) + value.bytes


def _refused(rows: list[tuple[Any, ...]], kinds: tuple[int, ...], names: list[str]) -> list[str]:
    messages = []
    for encode in (_copy_binary.encode_rows, encode_rows_python):
        with pytest.raises(WriteRejected) as info:
            encode(rows, kinds, names)
        messages.append(str(info.value))
    assert messages[0].split(":")[0] == messages[1].split(":")[0]
    return messages


def test_a_row_of_the_wrong_width_is_refused() -> None:
    messages = _refused([(T, ID), (T,)], (TIME, UUID_), ["time", "id"])
    assert messages[0] == "row 1 has 1 values; the table takes 2 columns"


@pytest.mark.parametrize(
    ("value", "kind", "why"),
    [
        ("12.5", FLOAT, ""),
        (12, TEXT, "expected str"),
        ("bad\ud800", TEXT, "UnicodeEncodeError"),
        ("not-a-uuid", UUID_, "ValueError"),
        (b"0123456789abcdef", UUID_, "expected a UUID"),
        ({"n": 2**64}, JSONB, "Integer exceeds 64-bit range"),
        ("2026-12-07", TIME, "expected a datetime"),
        ((1.0,), POINT, ""),
        (10**400, FLOAT, ""),
    ],
)
def test_a_value_neither_can_encode_names_its_column_and_row(
    value: object, kind: int, why: str
) -> None:
    rows = [(T, None), (T, value)]
    messages = _refused(rows, (TIME, kind), ["time", "speed"])
    for message in messages:
        assert message.startswith("cannot encode column speed of row 1: ")
        assert why in message


def test_nothing_but_the_rows() -> None:
    assert both([], LOCATION_KINDS) == b""
    assert b"PGCOPY\n\xff\r\n\x00" + bytes(8) == copy_binary.HEADER
    assert struct.pack(">h", -1) == copy_binary.TRAILER
