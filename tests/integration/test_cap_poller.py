"""eriop cap-poller against feeds served over HTTP, the embedded Kafka broker and a
fresh PostgreSQL database (its memory of what was sent)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from eriop.dev import stack as devstack
from pipeline import metrics
from pipeline.decoders.cap.decoder import decode_cap
from pipeline.errors import DecodeError, UpstreamUnavailable
from pipeline.settings import CapSettings, Settings
from pipeline.sources.cap_feed.service import PollerService
from schemas.records import RawRecord
from tests.integration.cap_helpers import SENDER, Entry, FeedSite, atom, cap_doc, rss
from tests.integration.mqtt_helpers import read_topic
from tests.integration.util import wait_until

pytestmark = pytest.mark.timeout(120)

T0 = "2025-03-14T10:0{}:00+02:00"


def poller_settings(
    bootstrap: str, dsn: str, sources: list[dict[str, Any]], **feeds: Any
) -> Settings:
    return Settings(
        kafka_bootstrap=bootstrap,
        database_url=dsn,
        embedded_broker=True,
        kafka={"idempotence": False, "partitions": 1},
        cap_feeds={"sources": sources, "timeout_s": 1.0, "retry_initial_s": 0.1,
                   "retry_cap_s": 0.5, **feeds},
    )  # fmt: skip


@asynccontextmanager
async def poller(settings: Settings) -> AsyncIterator[PollerService]:
    service = PollerService(settings)
    assert await service.start(asyncio.Event())
    try:
        yield service
    finally:
        await service.close()


async def cap_records(bootstrap: str) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v, _ in await read_topic(bootstrap, "alerts.cap")]


def errors(source: str, kind: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "eriop_front_door_errors_total", {"door": "cap", "source": source, "kind": kind}
    )
    return value or 0.0


async def test_atom_feed_entries_updates_cancel_304_and_restart(
    broker: devstack.Broker, fresh_db: str, httpserver: HTTPServer
) -> None:
    site = FeedSite().serve(httpserver)
    docs = {f"A{i}": cap_doc(f"CF-2025-0314-00{i}") for i in (1, 2, 3)}
    entries = [Entry(f"urn:cf:{k}", T0.format(i), path=f"/cap/{k}.xml") for i, k in enumerate(docs)]
    for k, body in docs.items():
        site.put(f"/cap/{k}.xml", body)
    site.put("/feed.atom", atom(entries))
    settings = poller_settings(
        broker.bootstrap,
        fresh_db,
        [{"name": "county-fire", "url": httpserver.url_for("/feed.atom")}],
    )

    async with poller(settings) as service:
        (p,) = service.pollers
        assert (await p.poll()).forwarded == 3
        records = await cap_records(broker.bootstrap)
        assert sorted(v for _, v in records) == sorted(docs.values())  # bytes unchanged
        assert {k for k, _ in records} == {SENDER.encode()}  # keyed by sender
        # unchanged index: a conditional GET answered 304, nothing fetched again
        report = await p.poll()
        assert report.not_modified
        assert report.forwarded == 0
        _, headers = site.requests[-1]
        assert headers["If-None-Match"]
        assert headers["User-Agent"].startswith("eriop-cap-poller")

        # later: an Update and a Cancel appear, and A2's entry is revised
        sent = "2025-03-14T10:05:00+02:00"
        update = cap_doc("CF-U", msg_type="Update", references=f"{SENDER},CF-2025-0314-001,{sent}")
        cancel = cap_doc("CF-C", msg_type="Cancel", references=f"{SENDER},CF-2025-0314-003,{sent}")
        site.put("/cap/U.xml", update)
        site.put("/cap/C.xml", cancel)
        site.put("/cap/A2.xml", cap_doc("CF-2025-0314-002", headline="Fire spreading north"))
        entries[1] = Entry("urn:cf:A2", "2025-03-14T10:20:00+02:00", path="/cap/A2.xml")
        entries += [Entry("urn:cf:U", T0.format(5), path="/cap/U.xml"),
                    Entry("urn:cf:C", T0.format(6), path="/cap/C.xml")]  # fmt: skip
        site.put("/feed.atom", atom(entries))
        assert (await p.poll()).forwarded == 3
        assert site.count("/cap/A1.xml") == 1  # fetched once only

    # a new poller on the same database: nothing sent again, the new entry not missed
    site.put("/cap/A4.xml", cap_doc("CF-2025-0314-004"))
    entries.append(Entry("urn:cf:A4", T0.format(7), path="/cap/A4.xml"))
    site.put("/feed.atom", atom(entries))
    async with poller(settings) as service:
        assert (await service.pollers[0].poll()).forwarded == 1
    records = await cap_records(broker.bootstrap)
    assert len(records) == 7
    # the worker's decoder reads them: 6 alerts (A2 twice, one row downstream),
    # a supersede and a cancel
    now = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
    kinds = []
    for key, value in records:
        raw = RawRecord("alerts.cap", 0, 0, 1741944000000, key, value)
        kinds += [
            type(i).__name__ + ":" + getattr(i, "kind", "")
            for i in decode_cap(raw, CapSettings(), now)
        ]
    assert sorted(kinds).count("StoreAlert:") == 6
    assert "PatchAlert:cancel" in kinds
    assert "PatchAlert:supersede" in kinds


async def test_server_errors_slow_oversize_and_malformed_are_counted_and_retried(
    broker: devstack.Broker, fresh_db: str, httpserver: HTTPServer
) -> None:
    site = FeedSite().serve(httpserver)
    good = cap_doc("GOOD-1")
    site.put("/cap/good.xml", good)
    site.put("/cap/big.xml", cap_doc("BIG-1", headline="x" * 5000))
    site.put("/cap/bad.xml", b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'><identifier>")
    entries = [Entry("urn:g", T0.format(1), path="/cap/good.xml"),
               Entry("urn:big", T0.format(2), path="/cap/big.xml"),
               Entry("urn:bad", T0.format(3), path="/cap/bad.xml")]  # fmt: skip
    site.put("/feed.atom", atom(entries), status=500)
    name = "flaky"
    settings = poller_settings(
        broker.bootstrap, fresh_db, [{"name": name, "url": httpserver.url_for("/feed.atom")}],
        max_bytes=4096,
    )  # fmt: skip
    async with poller(settings) as service:
        (p,) = service.pollers
        before = {k: errors(name, k) for k in ("http_status", "timeout", "oversize", "not_xml")}
        with pytest.raises(UpstreamUnavailable) as failed:
            await p.poll()
        assert failed.value.error_code == "http_status"
        site.put("/feed.atom", atom(entries), delay_s=2.5)  # slower than timeout_s
        with pytest.raises(UpstreamUnavailable) as failed:
            await p.poll()
        assert failed.value.error_code == "timeout"
        await wait_until(site.idle, timeout=10, what="the slow answer to end")

        site.put("/feed.atom", atom(entries))
        report = await p.poll()
        assert report.forwarded == 1
        assert sorted(report.entry_errors) == ["not_xml", "oversize"]
        assert errors(name, "oversize") == before["oversize"] + 1
        assert errors(name, "not_xml") == before["not_xml"] + 1
        # validators were not kept: the next poll reads the index again and retries
        site.put("/cap/bad.xml", cap_doc("BAD-1"))
        site.put("/cap/big.xml", cap_doc("BIG-1"))
        report = await p.poll()
        assert not report.not_modified
        assert report.forwarded == 2
        assert report.ok
        assert site.count("/cap/good.xml") == 1

        site.put("/feed.atom", b"<feed><entry>" * 1000)  # an oversize index
        with pytest.raises(DecodeError):
            await p.poll()
    values = sorted(v for _, v in await cap_records(broker.bootstrap))
    assert values == sorted([good, cap_doc("BAD-1"), cap_doc("BIG-1")])


async def test_embedded_cap_rss_and_single_document_sources(
    broker: devstack.Broker, fresh_db: str, httpserver: HTTPServer
) -> None:
    site = FeedSite().serve(httpserver)
    inline, escaped = cap_doc("EMB-1"), cap_doc("EMB-2", sender="warn@met.example")
    embedded = [
        Entry("urn:e1", T0.format(1), embedded=inline),
        Entry("urn:e2", T0.format(2), embedded=escaped, escaped=True),
    ]
    site.put("/embedded.atom", atom(embedded))
    site.put("/rss/1.xml", cap_doc("RSS-1", sender="civil@protection.example"))
    site.put("/feed.rss", rss([Entry("rss-1", "Fri, 14 Mar 2025 08:05:00 GMT",
                                     path=httpserver.url_for("/rss/1.xml"))]))  # fmt: skip
    single = cap_doc("ONE-1", sender="single@example.org")
    site.put("/current.xml", single)
    sources = [
        {"name": "embedded", "url": httpserver.url_for("/embedded.atom"), "kind": "atom"},
        {"name": "rss", "url": httpserver.url_for("/feed.rss")},
        {"name": "single", "url": httpserver.url_for("/current.xml"), "kind": "document"},
    ]
    async with poller(poller_settings(broker.bootstrap, fresh_db, sources)) as service:
        for p in service.pollers:
            assert (await p.poll()).forwarded == (2 if p.source.name == "embedded" else 1)
        for p in service.pollers:  # nothing twice
            assert (await p.poll()).forwarded == 0
    records = dict((v, k) for k, v in await cap_records(broker.bootstrap))
    # escaped text in the entry: the document's text as the feed carries it (trimmed)
    assert records[escaped.split(b"?>", 1)[1].strip()] == b"warn@met.example"
    assert records[single] == b"single@example.org"
    (from_xml,) = [v for v, k in records.items() if k == SENDER.encode()]
    assert b"<identifier>EMB-1</identifier>" in from_xml  # re-serialised, same namespace
    now = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
    for value, key in records.items():
        (store, *_) = decode_cap(
            RawRecord("alerts.cap", 0, 0, 1741944000000, key, value), CapSettings(), now
        )
        assert type(store).__name__ == "StoreAlert"


async def test_running_service_backs_off_then_recovers(
    broker: devstack.Broker, fresh_db: str, httpserver: HTTPServer
) -> None:
    site = FeedSite().serve(httpserver)
    site.put("/cap/1.xml", cap_doc("LOOP-1"))
    site.put("/feed.atom", atom([Entry("urn:l1", T0.format(1), path="/cap/1.xml")]), status=503)
    settings = poller_settings(
        broker.bootstrap, fresh_db,
        [{"name": "loop", "url": httpserver.url_for("/feed.atom"), "interval_s": 1.0}],
    )  # fmt: skip
    async with poller(settings) as service:
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(stop))

        async def retried() -> bool:
            return site.count("/feed.atom") >= 3

        await wait_until(retried, timeout=20, what="retries of the failing index")
        assert "loop" in service.last_error
        site.put("/feed.atom", atom([Entry("urn:l1", T0.format(1), path="/cap/1.xml")]))

        async def recovered() -> bool:
            return "loop" not in service.last_error and site.count("/cap/1.xml") == 1

        await wait_until(recovered, timeout=20, what="recovery")
        health = await service.health()
        assert health["ok"]
        assert health["sources"]["loop"]["ok"]
        stop.set()
        await task
    assert len(await cap_records(broker.bootstrap)) == 1
