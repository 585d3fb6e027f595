"""Rows of the time-series tables in PostgreSQL's binary COPY format.

asyncpg's ``copy_records_to_table`` encodes each value through its codec: a
dispatch per value, and a call into Python for every timestamptz, geography
and jsonb (pipeline.clients.postgres), about 3.4 µs of client CPU per
location row. The volume path's tables have a handful of column kinds, so the
C extension ``_copy_binary`` (Cython, built by setup.py) writes their rows,
by kind, straight into the bytes a ``COPY ... FROM STDIN (FORMAT binary)``
reads, in about 0.3 µs. ``encode_rows_python`` below is its twin and the
reference the tests hold it to (tests/unit/test_copy_binary.py); both write
the bytes asyncpg's codecs would (tests/integration/test_copy_binary_pg.py):
a timestamptz as ``encode_timestamptz``, a point as ``encode_point``, jsonb as
version 1 and orjson's text. Where the extension is not loaded, the store
hands asyncpg the rows as before: the twin costs more per row than asyncpg.

A value that cannot be encoded raises ``WriteRejected`` naming its column and
row, before anything is sent: no retry would ever store it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Final
from uuid import UUID

import orjson

from pipeline.clients.postgres import encode_point, encode_timestamptz
from pipeline.compiled import pure_python
from pipeline.errors import WriteRejected

#: column kinds, in the order of a table's columns
TIME: Final = 0
UUID_: Final = 1
TEXT: Final = 2
FLOAT: Final = 3
POINT: Final = 4
JSONB: Final = 5

#: the signature, flags and header extension of a binary COPY
HEADER: Final = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
#: the field count -1 that ends it
TRAILER: Final = b"\xff\xff"

_NULL: Final = b"\xff\xff\xff\xff"
_EMPTY_JSONB: Final = b"\x00\x00\x00\x03\x01{}"
_i2: Final = struct.Struct(">h").pack
_i4: Final = struct.Struct(">i").pack
_time: Final = struct.Struct(">iq").pack
_float: Final = struct.Struct(">id").pack
_POINT_LEN: Final = _i4(25)
_UUID_LEN: Final = _i4(16)


def _uuid(value: object) -> bytes:
    raw = UUID(value).bytes if isinstance(value, str) else getattr(value, "bytes", None)
    if not isinstance(raw, bytes) or len(raw) != 16:
        raise TypeError(f"expected a UUID, got {type(value).__name__!r}")
    return raw


def _text(value: object) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"expected str, got {type(value).__name__!r}")
    data = value.encode()
    return _i4(len(data)) + data


def _jsonb(value: object) -> bytes:
    if type(value) is dict and not value:
        return _EMPTY_JSONB
    data = orjson.dumps(value)
    return _i4(len(data) + 1) + b"\x01" + data


def _field(kind: int, value: object) -> bytes:
    if kind == TIME:
        return _time(8, encode_timestamptz(value)[0])  # type: ignore[arg-type]
    if kind == UUID_:
        return _UUID_LEN + _uuid(value)
    if kind == TEXT:
        return _text(value)
    if kind == FLOAT:
        return _float(8, value)
    if kind == POINT:
        return _POINT_LEN + encode_point(value)  # type: ignore[arg-type, operator]
    return _jsonb(value)


def rejected(names: Sequence[str], row: int, column: int, exc: BaseException) -> WriteRejected:
    """The error of a value the table cannot take, naming its column and row."""
    reason = f"{type(exc).__name__}: {exc}"
    return WriteRejected(f"cannot encode column {names[column]} of row {row}: {reason[:200]}")


def wrong_width(names: Sequence[str], row: int, width: int) -> WriteRejected:
    """The error of a row with more or fewer values than the table has columns."""
    return WriteRejected(f"row {row} has {width} values; the table takes {len(names)} columns")


def encode_rows_python(
    rows: Sequence[tuple[object, ...]], kinds: Sequence[int], names: Sequence[str]
) -> bytes:
    """The rows' tuples (one value per column, None for NULL) as binary COPY rows."""
    out: list[bytes] = []
    put = out.append
    count = _i2(len(kinds))
    for i, row in enumerate(rows):
        if len(row) != len(kinds):
            raise wrong_width(names, i, len(row))
        put(count)
        for j, value in enumerate(row):
            if value is None:
                put(_NULL)
                continue
            try:
                put(_field(kinds[j], value))
            except Exception as exc:
                raise rejected(names, i, j, exc) from exc
    return b"".join(out)


Encoder = Callable[[Sequence[tuple[object, ...]], Sequence[int], Sequence[str]], bytes]


def compiled_encoder() -> Encoder | None:
    """encode_rows_python in C, or None where the extension is not loaded (the
    Python twin costs more per row than asyncpg's own encoding, so the store
    then hands asyncpg the rows)."""
    if pure_python():
        return None
    try:
        from pipeline.sinks.postgres._copy_binary import encode_rows
    except ImportError:
        return None
    return encode_rows
