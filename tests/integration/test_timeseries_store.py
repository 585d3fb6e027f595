"""The volume path's COPY gives way to alerts in hand: its gate is awaited
before the COPY and every so many rows in it; the first write still wins when
keys repeat."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from pipeline.clients.postgres import Database
from pipeline.errors import WriteRejected
from pipeline.priority import PriorityFlag, Yielder
from pipeline.sinks.postgres import timeseries
from pipeline.sinks.postgres.timeseries import TimeseriesStore
from schemas.canonical import TelemetryRow

pytestmark = pytest.mark.integration

DEVICE = uuid.UUID("6f1c9a52-61c4-4d8e-9a51-0d5b2f1c0001")
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)


def rows(first: int, n: int) -> list[TelemetryRow]:
    return [
        TelemetryRow(
            T0 + timedelta(milliseconds=i), DEVICE, "probe", "temp", float(i), None, None, {}
        )
        for i in range(first, first + n)
    ]


@pytest.fixture
async def db(fresh_db: str) -> AsyncIterator[Database]:
    d = Database(fresh_db)
    await d.start()
    yield d
    await d.close()


async def stored(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM telemetry"))
    finally:
        await conn.close()


@pytest.fixture(params=["binary", "asyncpg"])
def encoding(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The rows encoded for a binary COPY by copy_binary's extension, or by
    asyncpg where the extension is not loaded."""
    assert timeseries.ENCODER is not None, "scripts/setup.sh compiles copy_binary"
    if request.param == "asyncpg":
        monkeypatch.setattr(timeseries, "ENCODER", None)
    return str(request.param)


async def test_the_gate_is_awaited_before_the_copy_and_every_so_many_rows(
    db: Database, fresh_db: str, encoding: str
) -> None:
    looks: list[str] = []

    class Counting:
        async def wait(self) -> None:
            looks.append("awaited")

        def wait_blocking(self) -> None:
            looks.append("blocking")

    store = TimeseriesStore(db, "g", look_every=100, gate=Counting())
    result = await store.write_telemetry(rows(0, 250), {("telemetry.raw", 0): 250})
    # before the COPY, then within it after rows 100 and 200: the encoded bytes
    # go in pieces the store awaits between, asyncpg's rows through a
    # generator that can only block
    assert (result.inserted, result.keys) == (250, None)
    within = "awaited" if encoding == "binary" else "blocking"
    assert looks == ["awaited", within, within]
    assert await stored(fresh_db) == 250
    assert await store.load_offsets(["telemetry.raw"]) == {("telemetry.raw", 0): 250}

    # 150 repeats and 10 new rows: the repeats are left as first written
    again = await store.write_telemetry(rows(100, 160), {("telemetry.raw", 0): 410})
    assert again.inserted == 10
    assert again.keys == {(DEVICE, "temp", r.time) for r in rows(250, 10)}
    assert await stored(fresh_db) == 260


async def test_the_copy_waits_while_alerts_are_in_hand(
    db: Database, fresh_db: str, encoding: str
) -> None:
    alert_side = PriorityFlag.create()
    volume_side = PriorityFlag.for_role(True, os.dup(alert_side.fd))
    try:
        store = TimeseriesStore(
            db, "g", look_every=100, gate=Yielder(volume_side, max_wait_s=60, poll_s=0.001)
        )
        alert_side.hold()
        writing = asyncio.create_task(
            store.write_telemetry(rows(0, 250), {("telemetry.raw", 0): 250})
        )
        for _ in range(50):
            await asyncio.sleep(0.002)
            assert not writing.done()
        assert await stored(fresh_db) == 0
        alert_side.release()
        result = await asyncio.wait_for(writing, 30)
        assert result.inserted == 250
        assert await stored(fresh_db) == 250
    finally:
        if volume_side is not None:
            volume_side.close()
        alert_side.close()


async def test_a_row_the_encoder_refuses_stores_nothing_and_names_itself(
    db: Database, fresh_db: str, encoding: str
) -> None:
    store = TimeseriesStore(db, "g", look_every=100)
    bad = [*rows(0, 5), rows(5, 1)[0]._replace(metric_name=7), *rows(6, 5)]  # type: ignore[arg-type]
    with pytest.raises(WriteRejected) as info:
        await store.write_telemetry(bad, {("telemetry.raw", 0): 11})
    if encoding == "binary":
        assert str(info.value).startswith("cannot encode column metric_name of row 5: ")
    assert await stored(fresh_db) == 0
    assert await store.load_offsets(["telemetry.raw"]) == {}
    # the connection goes on serving
    result = await store.write_telemetry(rows(0, 5), {("telemetry.raw", 0): 5})
    assert result.inserted == 5
