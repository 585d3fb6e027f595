"""PostgreSQL access: one asyncpg pool, its codecs, and error translation.

asyncpg exceptions are translated here into :mod:`pipeline.errors`: connection
loss and server shutdown are transient (pause and retry), data and constraint
errors are ``WriteRejected`` (dead-letter the record), and so are values the
driver cannot encode at all (a lone surrogate in text, an integer beyond 64 bits
in JSON): no retry will ever store them.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Final, cast
from uuid import UUID

import asyncpg
import orjson
from asyncpg.pgproto import pgproto

from pipeline.errors import DatabaseUnavailable, TransientError, WriteRejected
from schemas.canonical import GeoPoint

log = logging.getLogger(__name__)

_EWKB_POINT_SRID = struct.Struct("<BIIdd")
_WKB_POINT = 0x20000001  # Point with the SRID flag set


def encode_point(point: GeoPoint | tuple[float, float] | None) -> bytes | None:
    """EWKB of a WGS 84 point, the binary wire format of PostGIS geography."""
    if point is None:
        return None
    return _EWKB_POINT_SRID.pack(1, _WKB_POINT, 4326, point[0], point[1])


def decode_point(data: bytes) -> GeoPoint | None:
    if len(data) < 21:
        return None
    endian = "<" if data[0] == 1 else ">"
    (kind,) = struct.unpack_from(endian + "I", data, 1)
    offset = 9 if kind & 0x20000000 else 5
    lon, lat = struct.unpack_from(endian + "dd", data, offset)
    return GeoPoint(lon, lat)


def _encode_jsonb(value: Any) -> bytes:
    return b"\x01" + orjson.dumps(value)


def _decode_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


# timestamptz on the wire: microseconds since 2000-01-01 UTC, the int64 extremes
# meaning ±infinity. asyncpg writes its naive datetime.max and datetime.min, and
# any time at those same instants, as the infinities, and reads them back so.
_PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_INFINITY: Final = 2**63 - 1
_NEGATIVE_INFINITY: Final = -(2**63)
_AT_INFINITY: Final = (datetime.max.replace(tzinfo=UTC) - _PG_EPOCH) // _MICROSECOND
_AT_NEGATIVE_INFINITY: Final = (datetime.min.replace(tzinfo=UTC) - _PG_EPOCH) // _MICROSECOND


def encode_timestamptz(value: datetime) -> tuple[int]:
    """A timestamptz as asyncpg's own codec encodes it, for less CPU per value.

    asyncpg converts each value to UTC and compares it with its two infinities
    before subtracting the epoch, about 0.7 µs a value; an aware datetime needs
    only the subtraction. Naive datetimes (local time), dates (local midnight)
    and the infinities take the same meaning as in asyncpg.
    """
    try:
        micros = (value - _PG_EPOCH) // _MICROSECOND
    except TypeError:
        micros = _micros_of_naive(value)
    if micros == _AT_INFINITY:
        return (_INFINITY,)
    if micros == _AT_NEGATIVE_INFINITY:
        return (_NEGATIVE_INFINITY,)
    return (micros,)


def _micros_of_naive(value: object) -> int:
    if not isinstance(value, date):
        raise TypeError(
            f"expected a datetime.date or datetime.datetime instance, got {type(value).__name__!r}"
        )
    if not isinstance(value, datetime):
        # asyncpg takes a date as midnight at the current local UTC offset
        offset = datetime.now(UTC).astimezone().utcoffset() or timedelta(0)
        value = datetime(value.year, value.month, value.day, tzinfo=timezone(offset))
    elif value == datetime.max:
        return _AT_INFINITY
    elif value == datetime.min:
        return _AT_NEGATIVE_INFINITY
    return (value.astimezone(UTC) - _PG_EPOCH) // _MICROSECOND


def decode_timestamptz(value: tuple[int]) -> datetime:
    (micros,) = value
    if micros == _INFINITY:
        return datetime.max
    if micros == _NEGATIVE_INFINITY:
        return datetime.min
    return _PG_EPOCH + timedelta(microseconds=micros)


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=_encode_jsonb, decoder=_decode_jsonb, format="binary"
    )
    await conn.set_type_codec(
        "geography", schema="public", encoder=encode_point, decoder=decode_point, format="binary"
    )
    await conn.set_type_codec(
        "timestamptz",
        schema="pg_catalog",
        encoder=encode_timestamptz,
        decoder=decode_timestamptz,
        format="tuple",
    )


TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57", "58", "40")


def translate(exc: BaseException) -> Exception:
    """Map a driver exception to a pipeline error (transient or rejected)."""
    if isinstance(exc, TransientError | WriteRejected):
        return exc
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", "") or ""
        if state[:2] in TRANSIENT_SQLSTATE_CLASSES:
            return DatabaseUnavailable(f"database error {state}: {exc}")
        return WriteRejected(f"database rejected the row ({state}): {str(exc)[:300]}")
    if isinstance(exc, UnicodeEncodeError):
        return WriteRejected(f"text the database cannot store: {exc.reason} in {exc.object[:80]!r}")
    if isinstance(exc, orjson.JSONEncodeError):
        return WriteRejected(f"JSON the database cannot store: {str(exc)[:200]}")
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError | ConnectionError):
        return DatabaseUnavailable(f"database connection failed: {exc}")
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


def driver_uuid(uid: UUID) -> UUID:
    """``uid`` as asyncpg's own UUID type (a ``uuid.UUID``, equal to ``uid``):
    hashed, printed and COPY-encoded in C rather than in Python."""
    return cast(UUID, pgproto.UUID(uid.bytes))


class Database:
    """Owns the connection pool; ``start``/``close``/``health`` like every component."""

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 6) -> None:
        self._dsn = dsn
        self._min = min_size
        self._max = max_size
        self._pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min,
                max_size=self._max,
                init=_init_connection,
                command_timeout=60,
                timeout=10,
            )
        except Exception as exc:
            raise translate(exc) from exc

    async def close(self, timeout: float = 10.0) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), timeout)
            except (TimeoutError, asyncpg.PostgresError, OSError):
                pool.terminate()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise DatabaseUnavailable("database pool is not started")
        return self._pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self.pool.acquire(timeout=30) as conn:
                yield conn
        except (asyncpg.PostgresError, OSError, TimeoutError, asyncpg.InterfaceError) as exc:
            raise translate(exc) from exc

    async def health(self) -> dict[str, Any]:
        try:
            async with self.connection() as conn:
                await conn.fetchval("SELECT 1")
            return {"ok": True}
        except Exception as exc:
            return {"ok": False, "error": str(translate(exc))[:200]}
