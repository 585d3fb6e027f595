"""The fault suite's fixtures and helpers: sizes, workloads with a ledger of what
was produced where, worker processes, proxies, and the checks every fault test
shares (database truth, the committed-prefix rule, the Redis stream, the
dead-letter topic, per-topic accounting).

Sizes are the issue's minimums by default; ``ERIOP_SOAK=1`` or
``ERIOP_SOAK_SECONDS=N`` turns the suite into a soak (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from eriop.dev.stack import Broker, free_port, wait_port
from eriop.traffic import Fleet, dc09_frame
from eriop.workerproc import WorkerProcess, worker_env
from pipeline.clients.kafka import ALERT_TOPICS
from tests.faults.proxy import TcpProxy

# --- sizes -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much traffic and how many faults one run injects."""

    alerts: int = 20_000
    points: int = 200_000
    kills: int = 5
    outage_s: float = 30.0
    #: 0 for the CI run; otherwise the soak's target duration of the kill phase
    soak_s: float = 0.0
    seed: int = 0

    @property
    def scale(self) -> float:
        return max(self.soak_s / 60.0, 1.0)


def sizes_from_env(environ: Mapping[str, str] = os.environ) -> Sizes:
    seed = int(environ.get("ERIOP_FAULT_SEED") or random.randrange(1 << 30))
    raw = environ.get("ERIOP_SOAK_SECONDS", "")
    if not raw and environ.get("ERIOP_SOAK", "").lower() in ("1", "true", "yes"):
        raw = "600"
    if not raw:
        return Sizes(seed=seed)
    soak = float(raw)
    f = max(soak / 60.0, 1.0)
    return Sizes(
        alerts=int(20_000 * f),
        points=int(200_000 * f),
        kills=max(5, int(soak / 10)),
        outage_s=max(30.0, min(soak / 10, 120.0)),
        soak_s=soak,
        seed=seed,
    )


SIZES = sizes_from_env()


def timeout_for(base_s: float) -> float:
    """A per-test timeout that grows with the soak."""
    return base_s + 4 * SIZES.soak_s


@pytest.fixture(scope="session")
def sizes() -> Sizes:
    print(f"fault suite sizes: {SIZES}")
    return SIZES


# --- what is produced, and where it landed -------------------------------------------

Msg = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]


@dataclass(frozen=True, slots=True)
class Expect:
    """What the pipeline must make of one message.

    ``alert``: ident (source, external_id) stored; ``points``: a telemetry message
    whose rows share one time, ident = that time in epoch ms; ``fix``: ident
    (resource_id, epoch ms) in location_history; ``dlq``: ident = the error code;
    ``skip``: dropped on purpose (tombstone); ``other``: valid, not tracked.
    """

    kind: str
    ident: Any = None
    rows: int = 1


Planned = tuple[Msg, Expect]


@dataclass(slots=True)
class Sent:
    topic: str
    partition: int
    offset: int
    expect: Expect


@dataclass
class Ledger:
    """Every produced message with its partition and offset."""

    sent: list[Sent] = field(default_factory=list)

    def of(self, kind: str) -> list[Sent]:
        return [s for s in self.sent if s.expect.kind == kind]

    def idents(self, kind: str) -> set[Any]:
        return {s.expect.ident for s in self.sent if s.expect.kind == kind}


def ms(t: datetime) -> int:
    return round(t.timestamp() * 1000)


class Workload:
    """Message builders; every valid message knows what it must become."""

    def __init__(self, tag: str, seed: int) -> None:
        self.tag = tag
        self.rnd = random.Random(seed)

    def json_alerts(self, n: int, dup_ratio: float, *, start: int = 0) -> list[Planned]:
        now = datetime.now(UTC).isoformat()
        out: list[Planned] = []
        for i in range(start, start + n):
            doc = {
                "source": "fault_feed", "external_id": f"{self.tag}-{i}", "type": "panic",
                "severity": 1 + i % 5, "title": f"fault alert {i}", "occurred_at": now,
                "location": {"lon": 24.9 + (i % 100) / 1000, "lat": 60.17},
            }  # fmt: skip
            msg: Msg = ("alerts.json", f"k{i % 13}".encode(), json.dumps(doc).encode(), [])
            out.append((msg, Expect("alert", ("fault_feed", f"{self.tag}-{i}"))))
        return out + self._copies(out, dup_ratio)

    def alarms(self, n: int, dup_ratio: float, *, start: int = 0) -> list[Planned]:
        """SIA-DCS alarm frames in receiver envelopes; a copy comes over a backup
        path (other receiver, line and stamp), which is the same alarm."""
        stamp = datetime.now(UTC).replace(microsecond=0)
        hour_end = stamp.replace(minute=59, second=59)
        later = min(stamp + timedelta(seconds=30), hour_end)
        bucket = stamp.strftime("%Y%m%d%H")
        codes = ("BA", "FA", "PA", "MA", "GA", "TA")
        out: list[Planned] = []
        copies: list[Planned] = []
        for i in range(start, start + n):
            account = f"{7000 + i // 900:04d}"
            seq = i % 900 + 1
            code = codes[i % len(codes)]
            zone = 1 + i % 97
            ident = ("alarm_system", f"dc09:{account}:{seq:04d}:sia-{code}-{zone}-a1:{bucket}")
            for path, at, into in ((1, stamp, out), (2, later, copies)):
                body = (
                    f'"SIA-DCS"{seq:04d}R{path}L{path}#{account}'
                    f"[#{account}|Nri1/{code}{zone:03d}]{at.strftime('_%H:%M:%S,%m-%d-%Y')}"
                )
                env = {
                    "receiver": f"fault-rcv-{path}", "received_at": at.isoformat(),
                    "frame": dc09_frame(body),
                }  # fmt: skip
                msg: Msg = ("alerts.alarm", account.encode(), json.dumps(env).encode(), [])
                into.append((msg, Expect("alert", ident)))
        return out + self.rnd.sample(copies, int(len(copies) * dup_ratio))

    def cap(self, n: int) -> list[Planned]:
        now = datetime.now(UTC).replace(microsecond=0).isoformat()
        out: list[Planned] = []
        for i in range(n):
            ident = f"FAULT-{self.tag}-{i}"
            xml = (
                '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
                f"<identifier>{ident}</identifier><sender>fault@weather.example</sender>"
                f"<sent>{now}</sent><status>Actual</status><msgType>Alert</msgType>"
                "<scope>Public</scope><info><language>en-US</language><category>Met</category>"
                "<event>Storm</event><urgency>Expected</urgency><severity>Severe</severity>"
                "<certainty>Likely</certainty><headline>Storm warning</headline><area>"
                "<areaDesc>Coast</areaDesc><circle>60.17,24.94 5</circle></area></info></alert>"
            )
            msg: Msg = ("alerts.cap", b"fault@weather.example", xml.encode(), [])
            out.append((msg, Expect("alert", ("cap", f"fault@weather.example,{ident}"))))
        return out

    def axis(self, n: int) -> list[Planned]:
        """Axis audio-classifier rising edges, one unregistered device each (the
        first state seen of an item is an edge), so every message is a new alert."""
        path = "AudioClassification/Screaming"
        now = ms(datetime.now(UTC))
        out: list[Planned] = []
        for i in range(n):
            serial = f"FA{self.tag.upper()}{i:04X}"
            doc = {
                "topic": f"axis:{path}", "timestamp": now + i,
                "message": {"source": {"AudioSource": "AudioDevice0Input0"}, "key": {},
                            "data": {"Detected": "1"}},
            }  # fmt: skip
            key = f"axis/{serial}/event/tns:axis/{path}/$source/AudioSource/AudioDevice0Input0"
            msg: Msg = ("alerts.axis", key.encode(), json.dumps(doc).encode(), [])
            ident = f"axis:{serial}:{path}:AudioSource=AudioDevice0Input0:{now + i}"
            out.append((msg, Expect("alert", ("axis_mic", ident))))
        return out

    def telemetry(self, points: int, *, start: datetime, per_message: int = 4) -> list[Planned]:
        """Unique (device, metric, time) for every point; both formats alternate."""
        base = start.replace(microsecond=start.microsecond // 1000 * 1000)
        out: list[Planned] = []
        for i in range(points // per_message):
            device = f"FLT-{self.tag}-{i % 500:03d}"
            t = base + timedelta(milliseconds=i)
            if i % 2:
                pack: list[dict[str, Any]] = [
                    {"bn": f"{device}:", "bt": t.timestamp(), "n": "m0", "u": "Cel", "v": i}
                ]
                pack += [{"n": f"m{j}", "v": j * 1.5} for j in range(1, per_message)]
                body = json.dumps(pack)
            else:
                body = json.dumps(
                    [{"device_id": device, "device_type": "probe", "time": t.isoformat(),
                      "metric": f"m{j}", "value": j} for j in range(per_message)]
                )  # fmt: skip
            msg: Msg = ("telemetry.raw", device.encode(), body.encode(), [])
            out.append((msg, Expect("points", ms(t), per_message)))
        return out

    def gps(self, fleet: Fleet, n: int, *, start: datetime, step_ms: int = 50) -> list[Planned]:
        """Fixes moving every vehicle about 10 m per report, in time order."""
        base = start.replace(microsecond=start.microsecond // 1000 * 1000)
        pos = {v.id: (v.lon, v.lat) for v in fleet.vehicles}
        out: list[Planned] = []
        for i in range(n):
            v = fleet.vehicles[i % len(fleet.vehicles)]
            lon, lat = pos[v.id]
            lon, lat = (
                lon + 0.0001 * self.rnd.uniform(-1, 1),
                lat + 0.0001 * self.rnd.uniform(-1, 1),
            )
            pos[v.id] = (lon, lat)
            t = base + timedelta(milliseconds=i * step_ms)
            fix = {
                "resource_id": str(v.id), "lat": round(lat, 7), "lon": round(lon, 7),
                "time": t.isoformat(), "speed": 8.0, "heading": 90.0, "accuracy": 5,
            }  # fmt: skip
            msg: Msg = ("gps.raw", v.identifier.encode(), json.dumps(fix).encode(), [])
            out.append((msg, Expect("fix", (str(v.id), ms(t)))))
        return out

    def _copies(self, items: Sequence[Planned], ratio: float) -> list[Planned]:
        return self.rnd.sample(list(items), int(len(items) * ratio))

    def mix(self, *groups: Sequence[Planned]) -> list[Planned]:
        """One stream of all groups, shuffled (copies land before or after their original)."""
        out = [p for g in groups for p in g]
        self.rnd.shuffle(out)
        return out


async def produce(
    bootstrap: str,
    planned: Sequence[Planned],
    ledger: Ledger,
    *,
    over_s: float = 0.0,
    chunk: int = 2000,
) -> None:
    """Produce in order, recording each message's partition and offset; with
    ``over_s``, spread evenly over that many seconds."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024, request_timeout_ms=60000,
    )  # fmt: skip
    await producer.start()
    began = time.monotonic()
    try:
        for n in range(0, len(planned), chunk):
            part = planned[n : n + chunk]
            futures = []
            for (topic, key, value, headers), _ in part:
                futures.append(await producer.send(topic, value, key=key, headers=headers or None))
            for meta, (_, expect) in zip(await asyncio.gather(*futures), part, strict=True):
                ledger.sent.append(Sent(meta.topic, meta.partition, meta.offset, expect))
            if over_s:
                due = began + over_s * min(n + chunk, len(planned)) / len(planned)
                await asyncio.sleep(max(due - time.monotonic(), 0))
    finally:
        await producer.stop()


# --- database, broker and Redis truth ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One consistent view of the database: positions and what is stored."""

    offsets: dict[tuple[str, str, int], int]
    alerts: set[tuple[str, str]]
    point_times: set[int]
    fixes: set[tuple[str, int]]


async def snapshot(dsn: str) -> Snapshot:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            offsets = {
                (r[0], r[1], r[2]): r[3]
                for r in await conn.fetch(
                    "SELECT group_id, topic, partition, next_offset FROM ingest_offsets"
                )
            }
            alerts = {
                (r[0], r[1]) for r in await conn.fetch("SELECT source, external_id FROM alerts")
            }
            times = await conn.fetch(
                "SELECT round(extract(epoch FROM time) * 1000)::bigint FROM telemetry "
                "WHERE metric_name = 'm0'"
            )
            fixes = await conn.fetch(
                "SELECT resource_id::text, round(extract(epoch FROM time) * 1000)::bigint "
                "FROM location_history"
            )
    finally:
        await conn.close()
    return Snapshot(offsets, alerts, {r[0] for r in times}, {(r[0], r[1]) for r in fixes})


def group_of(topic: str, env: Mapping[str, str]) -> str:
    if topic in ALERT_TOPICS:
        return env["ERIOP_KAFKA__ALERTS_GROUP"]
    return env["ERIOP_KAFKA__BULK_GROUP"]


def uncovered(ledger: Ledger, snap: Snapshot, env: Mapping[str, str]) -> list[str]:
    """Messages below a committed position whose rows are not in the same snapshot:
    a position must never be committed for a record that is not durably stored."""
    problems = []
    for s in ledger.sent:
        committed = snap.offsets.get((group_of(s.topic, env), s.topic, s.partition), 0)
        if s.offset >= committed:
            continue
        kind, ident = s.expect.kind, s.expect.ident
        missing = (
            (kind == "alert" and ident not in snap.alerts)
            or (kind == "points" and ident not in snap.point_times)
            or (kind == "fix" and ident not in snap.fixes)
        )
        if missing:
            problems.append(f"{s.topic}[{s.partition}]@{s.offset} {kind} {ident} (< {committed})")
    return problems


async def scalar(dsn: str, query: str, *args: object) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def counts(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM alerts) AS alerts, "
            "(SELECT count(*) FROM telemetry) AS points, "
            "(SELECT count(*) FROM location_history) AS fixes, "
            "(SELECT count(*) FROM alert_outbox) AS outbox"
        )
    finally:
        await conn.close()
    assert row is not None
    return dict(row)


async def duplicate_keys(dsn: str) -> dict[str, int]:
    """Keys stored more than once, per table (the unique indexes forbid it)."""
    conn = await asyncpg.connect(dsn)
    try:
        return {
            table: int(
                await conn.fetchval(
                    f"SELECT count(*) FROM (SELECT 1 FROM {table} GROUP BY {key} "
                    "HAVING count(*) > 1) d"
                )
            )
            for table, key in (
                ("alerts", "source, external_id"),
                ("telemetry", "device_id, metric_name, time"),
                ("location_history", "resource_id, time"),
            )
        }
    finally:
        await conn.close()


def _consumer(bootstrap: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
        fetch_max_wait_ms=50, max_partition_fetch_bytes=4 * 1024 * 1024,
    )  # fmt: skip


async def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every record of ``topic`` up to its high watermark.

    The end comes from fetch responses: the embedded broker answers ListOffsets
    with the base offset of the last batch plus one, short of the real end.
    """
    c = _consumer(bootstrap)
    await c.start()
    out: list[Any] = []
    try:
        await c.topics()
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
        if not tps:
            return out
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, f"reading {topic} stalled"
            batch = await c.getmany(*tps, timeout_ms=300, max_records=5000)
            for records in batch.values():
                out.extend(records)
            marks = [c.highwater(tp) for tp in tps]
            if all(m is not None for m in marks):
                positions = [await c.position(tp) for tp in tps]
                if all(p >= m for p, m in zip(positions, marks, strict=True)):
                    return out
    finally:
        await c.stop()


async def dead_letters(bootstrap: str) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in await read_topic(bootstrap, "eriop.dlq")]


def produced_ends(ledger: Ledger) -> dict[tuple[str, int], int]:
    """The end of every partition the test produced to (all inbound traffic is)."""
    ends: dict[tuple[str, int], int] = {}
    for s in ledger.sent:
        ends[(s.topic, s.partition)] = max(ends.get((s.topic, s.partition), 0), s.offset + 1)
    return ends


async def drained(dsn: str, env: Mapping[str, str], ledger: Ledger) -> list[str]:
    """Inbound partitions whose stored position is behind the end of what was produced."""
    snap = await snapshot(dsn)
    return [
        f"{t}[{p}] at {snap.offsets.get((group_of(t, env), t, p), 0)} of {end}"
        for (t, p), end in sorted(produced_ends(ledger).items())
        if snap.offsets.get((group_of(t, env), t, p), 0) < end
    ]


async def stream_alerts(redis_url: str) -> list[tuple[str, str]]:
    """(source, external_id) of every entry of the alert stream, in order."""
    red = aioredis.from_url(redis_url)
    out: list[tuple[str, str]] = []
    try:
        start = "-"
        while True:
            entries = await red.xrange("eriop:stream:alerts", min=start, count=10_000)
            for _entry_id, fields in entries:
                doc = json.loads(fields[b"alert"])
                out.append((doc["source"], doc["external_id"]))
            if len(entries) < 10_000:
                return out
            start = "(" + entries[-1][0].decode()
    finally:
        await red.aclose()


async def eventually(
    probe: Callable[[], Awaitable[Any]], *, timeout: float, what: str, every: float = 0.5
) -> Any:
    """Poll ``probe`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


async def all_stored(dsn: str, env: Mapping[str, str], ledger: Ledger) -> bool:
    """Every produced alert and point stored, the outbox empty, every partition drained."""
    c = await counts(dsn)
    points = sum(s.expect.rows for s in ledger.of("points"))
    return (
        c["alerts"] >= len(ledger.idents("alert"))
        and c["points"] >= points
        and c["outbox"] == 0
        and not await drained(dsn, env, ledger)
    )


async def assert_exactly_once(
    dsn: str, redis_url: str, env: Mapping[str, str], ledger: Ledger
) -> int:
    """Every produced alert and telemetry point stored exactly once, no position
    ahead of its rows, every stored alert on the Redis stream; returns how many
    stream entries are repeats (allowed after a crash or rebalance)."""
    alerts = ledger.idents("alert")
    snap = await snapshot(dsn)
    assert not uncovered(ledger, snap, env)
    assert snap.alerts == alerts, (
        f"missing {len(alerts - snap.alerts)}, unexpected {len(snap.alerts - alerts)}"
    )
    assert snap.point_times == ledger.idents("points")
    assert (await counts(dsn))["points"] == sum(s.expect.rows for s in ledger.of("points"))
    assert await duplicate_keys(dsn) == {"alerts": 0, "telemetry": 0, "location_history": 0}
    on_stream = await stream_alerts(redis_url)
    missing = alerts - set(on_stream)
    assert not missing, f"{len(missing)} stored alerts not on the stream"
    return sum(n - 1 for n in Counter(on_stream).values() if n > 1)


# --- metrics ---------------------------------------------------------------------

OUTCOMES = ("stored", "duplicate", "dead_lettered", "skipped")


def accounting(body: str) -> dict[str, dict[str, float]]:
    """Per topic: consumed and each outcome, from one /metrics page."""
    acc: dict[str, dict[str, float]] = defaultdict(
        lambda: dict.fromkeys(("consumed", *OUTCOMES), 0)
    )
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            if s.name == "eriop_records_consumed_total":
                acc[s.labels["topic"]]["consumed"] += s.value
            elif s.name == "eriop_records_total":
                acc[s.labels["topic"]][s.labels["outcome"]] += s.value
    return dict(acc)


def unbalanced(acc: Mapping[str, Mapping[str, float]]) -> dict[str, Mapping[str, float]]:
    """Topics where consumed != stored + duplicate + dead_lettered + skipped."""
    return {t: a for t, a in acc.items() if a["consumed"] != sum(a[o] for o in OUTCOMES)}


def merge(*accs: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = defaultdict(
        lambda: dict.fromkeys(("consumed", *OUTCOMES), 0)
    )
    for acc in accs:
        for topic, a in acc.items():
            for k, v in a.items():
                out[topic][k] += v
    return dict(out)


# --- processes and proxies --------------------------------------------------------


class Workers:
    """``eriop worker`` processes of one test; whatever still runs is killed after it."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[WorkerProcess] = []

    def start(self, env: Mapping[str, str], name: str) -> WorkerProcess:
        w = WorkerProcess(dict(env), self.log_dir, name).start()
        self.started.append(w)
        return w

    async def healthy(self, w: WorkerProcess, timeout: float = 90) -> None:
        await asyncio.to_thread(w.wait_healthy, timeout)

    async def page(self, w: WorkerProcess) -> str:
        _, body = await asyncio.to_thread(w.get, "/metrics")
        return body.decode()

    async def accounting(self, w: WorkerProcess) -> dict[str, dict[str, float]]:
        return accounting(await self.page(w))

    async def metric(self, w: WorkerProcess, name: str, **labels: str) -> float:
        return await asyncio.to_thread(w.metric, name, **labels)

    async def balanced(self, w: WorkerProcess, timeout: float = 30) -> dict[str, dict[str, float]]:
        """The worker's accounting once it balances (it is idle); fails if it never does."""
        last: dict[str, dict[str, float]] = {}

        async def probe() -> bool:
            nonlocal last
            last = await self.accounting(w)
            return bool(last) and not unbalanced(last)

        try:
            await eventually(probe, timeout=timeout, what="balanced accounting")
        except AssertionError:
            raise AssertionError(f"accounting never balanced: {unbalanced(last)}") from None
        return last

    def running(self) -> list[WorkerProcess]:
        return [w for w in self.started if w.proc is not None and w.proc.poll() is None]

    def logs(self) -> str:
        return "\n".join(f"--- {w.log_path.name}\n{w.log()}" for w in self.started)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    ws = Workers(tmp_path)
    yield ws
    for w in ws.running():
        w.kill()
    print(f"worker logs: {[str(w.log_path) for w in ws.started]}")


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:8]


@pytest.fixture
def env(broker: Broker, fresh_db: str, redis_url: str, tag: str) -> dict[str, str]:
    """Worker environment with consumer groups of this test's own."""
    return worker_env(
        broker.bootstrap, fresh_db, redis_url,
        ERIOP_KAFKA__ALERTS_GROUP=f"alerts-{tag}", ERIOP_KAFKA__BULK_GROUP=f"bulk-{tag}",
    )  # fmt: skip


@pytest.fixture
def pg_proxy(fresh_db: str) -> Iterator[TcpProxy]:
    with TcpProxy.for_url(fresh_db) as proxy:
        yield proxy


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A Redis server of the test's own: the shared test database is flushed by
    other suites at any moment, which would look like lost stream entries."""
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_port("127.0.0.1", port, 10, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def redis_proxy(redis_url: str) -> Iterator[TcpProxy]:
    with TcpProxy.for_url(redis_url) as proxy:
        yield proxy


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()
