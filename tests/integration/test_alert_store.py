"""The alert store against the real database: a batch of new alerts is one
statement (rows, outbox entries and offsets together), and whatever it cannot
take goes the one-by-one way, which names the refused record."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from pipeline.clients.postgres import Database
from pipeline.errors import RecordRejected
from pipeline.sinks.postgres.alerts import AlertStore
from schemas.canonical import CanonicalAlert, GeoPoint
from schemas.intents import Discard, Intent, PatchAlert, SetRedis, StoreAlert
from schemas.records import RawRecord

pytestmark = pytest.mark.integration

GROUP = "store-test"


def alert(external_id: str, **extra: Any) -> CanonicalAlert:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "source": "feed", "external_id": external_id, "type": "fire", "severity": 2,
        "title": f"fire {external_id}", "location": GeoPoint(24.94, 60.17),
        "raw_payload": {"id": external_id}, "metadata": {"n": 1},
        "received_at": now, "processed_at": now,
    }  # fmt: skip
    return CanonicalAlert(**(fields | extra))


def record(offset: int, partition: int = 0) -> RawRecord:
    return RawRecord("alerts.json", partition, offset, 0, b"k", b"{}")


@pytest.fixture
async def store(fresh_db: str) -> AsyncIterator[AlertStore]:
    db = Database(fresh_db)
    await db.start()
    try:
        yield AlertStore(db, GROUP)
    finally:
        await db.close()


async def rows(dsn: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.set_type_codec(
            "jsonb", schema="pg_catalog", encoder=json.dumps, decoder=json.loads
        )
        return list(await conn.fetch(query))
    finally:
        await conn.close()


async def test_a_batch_of_new_alerts_is_one_statement_with_its_outbox_and_offsets(
    store: AlertStore, fresh_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.write([(record(0), [StoreAlert(alert("old"))])], {("alerts.json", 0): 1})

    async def one_by_one(*_: object) -> None:
        raise AssertionError("the batch left the one-statement path")

    monkeypatch.setattr(store, "_write_each", one_by_one)
    marker = SetRedis("eriop:test", "1")
    items: list[tuple[RawRecord, list[Intent]]] = [
        (record(1), [StoreAlert(alert("a1"))]),
        (record(2), [StoreAlert(alert("a1", title="same key, later"))]),  # in-batch repeat
        (record(3), [StoreAlert(alert("old"))]),  # stored by an earlier batch
        (record(4), [Discard("heartbeat")]),
        (record(0, partition=1), [marker]),
        (record(5), [StoreAlert(alert("a2"), dismiss_if_key="cancel:a2")]),
    ]
    result = await store.write(
        items, {("alerts.json", 0): 6, ("alerts.json", 1): 1}, frozenset({"cancel:a2"})
    )

    assert result.outcomes == ["stored", "duplicate", "duplicate", "skipped", "stored", "stored"]
    assert result.discards == [(3, "heartbeat")]
    assert result.redis_sets == [marker]
    stored = {
        r["external_id"]: r
        for r in await rows(fresh_db, "SELECT id, external_id, title, status FROM alerts")
    }
    assert sorted(stored) == ["a1", "a2", "old"]
    assert stored["a1"]["title"] == "fire a1"  # the first write wins
    assert stored["a2"]["status"] == "dismissed"
    # the outbox holds one entry per new alert, in batch order, with the ids the
    # database stored; the relay's fast path gets the same entries
    outbox = await rows(fresh_db, "SELECT id, alert_id, payload FROM alert_outbox ORDER BY id")
    assert [r["payload"]["external_id"] for r in outbox] == ["old", "a1", "a2"]
    assert [(e.id, e.payload) for e in result.outbox] == [
        (r["id"], r["payload"]) for r in outbox[1:]
    ]
    for r in outbox:
        ext = r["payload"]["external_id"]
        assert r["alert_id"] == stored[ext]["id"]
        assert r["payload"]["id"] == str(stored[ext]["id"])
        assert r["payload"]["status"] == stored[ext]["status"]
    offsets = await rows(
        fresh_db, "SELECT topic, partition, next_offset FROM ingest_offsets ORDER BY partition"
    )
    assert [tuple(r) for r in offsets] == [("alerts.json", 0, 6), ("alerts.json", 1, 1)]


async def test_a_record_the_database_refuses_is_named_and_nothing_is_stored(
    store: AlertStore, fresh_db: str
) -> None:
    too_long = alert("a1").model_copy(update={"title": "x" * 300})  # past VARCHAR(255)
    items: list[tuple[RawRecord, list[Intent]]] = [
        (record(0), [StoreAlert(alert("a0"))]),
        (record(1), [StoreAlert(too_long)]),
        (record(2), [StoreAlert(alert("a2"))]),
    ]
    with pytest.raises(RecordRejected) as caught:
        await store.write(items, {("alerts.json", 0): 3})
    assert caught.value.index == 1
    assert caught.value.error.error_code == "write_rejected"
    assert await rows(fresh_db, "SELECT id FROM alerts") == []
    assert await rows(fresh_db, "SELECT id FROM alert_outbox") == []
    assert await rows(fresh_db, "SELECT 1 FROM ingest_offsets") == []


async def test_a_batch_with_patches_keeps_its_order_one_by_one(
    store: AlertStore, fresh_db: str
) -> None:
    patch = PatchAlert(
        kind="still_present", source="feed", external_id="a0", metadata_patch={"seen": 2}
    )
    items: list[tuple[RawRecord, list[Intent]]] = [
        (record(0), [StoreAlert(alert("a0"))]),
        (record(1), [patch]),  # targets the alert stored just before it
    ]
    result = await store.write(items, {("alerts.json", 0): 2})
    assert result.outcomes == ["stored", "stored"]
    [row] = await rows(fresh_db, "SELECT metadata FROM alerts")
    assert row["metadata"] == {"n": 1, "seen": 2}
    assert [e.payload["event"] for e in result.outbox] == ["alert.created", "alert.updated"]
