"""Poison messages of every bad-input class, interleaved at about 1% with valid
traffic on every inbound topic, through a real worker.

Every valid alert, telemetry point and GPS fix is stored exactly once; every
poison message has exactly one dead letter on ``eriop.dlq`` with the error code
of its class, in an envelope (docs/formats.md section 7) that points at its
original topic, partition and offset and carries its key, value and headers;
no partition stalls behind a bad message; the per-topic accounting balances
with as many dead letters as poison messages; and the worker stays healthy.

A second test sends values that are valid JSON and pass the decoders but that
PostgreSQL cannot hold (lone UTF-16 surrogate escapes, integers beyond 64
bits): each must get one dead letter with an input error code (the decoder's
``invalid_value`` or the database's ``write_rejected``), never
``internal_error``, which the contract reserves for pipeline bugs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from eriop.dev.stack import Broker
from eriop.simulate import seed_demo
from eriop.traffic import Fleet, dc09_frame
from eriop.workerproc import WorkerProcess
from pipeline.clients.kafka import INBOUND_TOPICS
from pipeline.decoders.envelope import parse_timestamp
from pipeline.errors import ERROR_CODES, MAX_REASON_CHARS
from pipeline.sinks.kafka.dlq import OVERSIZE_COPY_BYTES
from tests.faults.conftest import (
    Expect,
    Ledger,
    Msg,
    Planned,
    Sent,
    Sizes,
    Workers,
    Workload,
    counts,
    drained,
    duplicate_keys,
    eventually,
    produce,
    read_topic,
    snapshot,
    stream_alerts,
    timeout_for,
)
from tests.faults.poison import (
    ALARM_ACCOUNTS,
    CODES_BY_TOPIC,
    MAX_MESSAGE_BYTES,
    PoisonFactory,
    codes_covered,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(timeout_for(180))]

POISON_RATIO = 0.01
NO_DUPLICATES = {"alerts": 0, "telemetry": 0, "location_history": 0}
#: what a value PostgreSQL cannot hold may become: refused by the decoder, or
#: by the database for good
UNSTORABLE_CODES = ("invalid_value", "write_rejected")

Origin = tuple[str, int, int]


async def test_poison_of_every_class_is_dead_lettered_and_nothing_stalls(
    broker: Broker,
    fresh_db: str,
    redis_url: str,
    env: dict[str, str],
    workers: Workers,
    sizes: Sizes,
    tag: str,
) -> None:
    fleet = Fleet.demo(vehicles=10, cameras=0)
    await seed_demo(fresh_db, fleet)
    env = {
        **env,
        "ERIOP_MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES),
        "ERIOP_ALARM__ACCOUNTS": ALARM_ACCOUNTS,
    }
    load = Workload(tag, sizes.seed)
    poisons = PoisonFactory(tag, fleet)
    assert codes_covered(poisons) == CODES_BY_TOPIC
    w = workers.start(env, "worker")
    await workers.healthy(w)
    ledger = Ledger()
    await _warm_up(broker.bootstrap, fresh_db, env, load, ledger)

    k = sizes.scale
    fixes = int(1_000 * k)
    now = datetime.now(UTC)
    valid = load.mix(
        load.json_alerts(int(2_000 * k), 0.05),
        load.alarms(int(300 * k), 0.1),
        load.cap(int(100 * k)),
        load.axis(int(100 * k)),
        load.telemetry(int(40_000 * k), start=now - timedelta(minutes=30)),
        load.gps(fleet, fixes, start=now - timedelta(minutes=10, milliseconds=50 * fixes)),
    )
    per_topic = Counter(msg[0] for msg, _ in valid)
    bad = [
        p
        for topic in INBOUND_TOPICS
        for p in poisons.build(topic, round(per_topic[topic] * POISON_RATIO))
    ]
    planned = load.mix(valid, bad)
    print(
        f"{len(valid)} valid and {len(bad)} poison messages ({len(bad) / len(planned):.1%}): "
        f"{dict(Counter(m[0] for m, _ in bad))}"
    )
    began = datetime.now(UTC)
    pairs = await _produce(broker.bootstrap, planned, ledger)
    poison = [(msg, s) for msg, s in pairs if s.expect.kind == "dlq"]
    produced_at = datetime.now(UTC)

    async def complete() -> bool:
        return await _stored(fresh_db, env, ledger) and len(
            await read_topic(broker.bootstrap, "eriop.dlq")
        ) >= len(poison)

    await eventually(complete, timeout=timeout_for(90), what="valid stored, poison dead-lettered")
    print(f"all processed {(datetime.now(UTC) - began).total_seconds():.1f}s after producing began")

    # every valid record stored exactly once; no partition left behind
    snap = await snapshot(fresh_db)
    assert snap.alerts == ledger.idents("alert")
    assert snap.point_times == ledger.idents("points")
    assert snap.fixes == ledger.idents("fix")
    assert (await counts(fresh_db))["points"] == sum(s.expect.rows for s in ledger.of("points"))
    assert await duplicate_keys(fresh_db) == NO_DUPLICATES
    assert not await drained(fresh_db, env, ledger)
    assert not ledger.idents("alert") - set(await stream_alerts(redis_url))

    # exactly one dead letter per poison message, none for anything else
    letters = await _letters(broker.bootstrap)
    expected = {(s.topic, s.partition, s.offset) for _, s in poison}
    assert set(letters) == expected, (
        f"dead letters for valid messages: {sorted(set(letters) - expected)[:10]}; "
        f"poison without a dead letter: {sorted(expected - set(letters))[:10]}"
    )
    repeated = {o: len(rs) for o, rs in letters.items() if len(rs) > 1}
    assert not repeated, f"poison dead-lettered more than once: {repeated}"
    problems = [
        p
        for msg, s in poison
        for p in envelope_problems(
            msg, s, letters[(s.topic, s.partition, s.offset)][0], began, produced_at
        )
    ]
    assert not problems, f"{len(problems)} envelope problems: {problems[:10]}"

    # the accounting balances, with one dead letter per poison message on each topic
    acc = await workers.balanced(w)
    on_topic = Counter(s.topic for s in ledger.sent)
    bad_on_topic = Counter(s.topic for _, s in poison)
    for topic in INBOUND_TOPICS:
        a = acc.get(topic)
        assert a is not None, f"nothing consumed on {topic}"
        assert a["consumed"] == on_topic[topic], (topic, a)
        assert a["dead_lettered"] == bad_on_topic[topic], (topic, a)
        assert a["stored"] + a["duplicate"] == on_topic[topic] - bad_on_topic[topic], (topic, a)
        assert a["skipped"] == 0, (topic, a)
    by_code = Counter((s.topic, ERROR_CODES[s.expect.ident], s.expect.ident) for _, s in poison)
    assert await _dead_letter_counts(workers, w) == by_code

    # and the worker is still up and healthy
    assert w.proc is not None
    assert w.proc.poll() is None, w.log()
    status, body = await asyncio.to_thread(w.get, "/health")
    assert status == 200, body


async def test_values_postgres_cannot_hold_are_dead_lettered_as_input_errors(
    broker: Broker,
    fresh_db: str,
    env: dict[str, str],
    workers: Workers,
    sizes: Sizes,
    tag: str,
) -> None:
    fleet = Fleet.demo(vehicles=3, cameras=0)
    await seed_demo(fresh_db, fleet)
    load = Workload(tag, sizes.seed)
    w = workers.start(env, "worker")
    await workers.healthy(w)
    ledger = Ledger()
    await _warm_up(broker.bootstrap, fresh_db, env, load, ledger)

    now = datetime.now(UTC)
    unstorable = _unstorable(tag, fleet, now)
    what_of = {id(msg): what for what, msg in unstorable}
    planned = load.mix(
        load.json_alerts(200, 0.0),
        load.alarms(50, 0.0),
        load.axis(20),
        load.telemetry(4_000, start=now - timedelta(minutes=30)),
        load.gps(fleet, 200, start=now - timedelta(minutes=10)),
        [(msg, Expect("dlq")) for _, msg in unstorable],
    )
    origins = {
        (s.topic, s.partition, s.offset): what_of[id(msg)]
        for msg, s in await _produce(broker.bootstrap, planned, ledger)
        if s.expect.kind == "dlq"
    }

    async def complete() -> bool:
        return await _stored(fresh_db, env, ledger) and len(
            await read_topic(broker.bootstrap, "eriop.dlq")
        ) >= len(unstorable)

    await eventually(complete, timeout=90, what="valid stored, unstorable values dead-lettered")
    assert await duplicate_keys(fresh_db) == NO_DUPLICATES
    assert not await drained(fresh_db, env, ledger)
    letters = await _letters(broker.bootstrap)
    assert set(letters) <= set(origins), "a valid message was dead-lettered"
    got = {
        what: [json.loads(r.value)["error_code"] for r in letters.get(origin, [])]
        for origin, what in origins.items()
    }
    wrong = {
        what: codes for what, codes in got.items() if codes not in [[c] for c in UNSTORABLE_CODES]
    }
    print(f"dead letters: {got}")
    assert not wrong, (
        f"expected exactly one dead letter with one of {UNSTORABLE_CODES} each; got {wrong}\n"
        f"{_internal_errors(w)}"
    )
    assert w.proc is not None
    assert w.proc.poll() is None, w.log()


# --- helpers ---------------------------------------------------------------------


async def _produce(
    bootstrap: str, planned: Sequence[Planned], ledger: Ledger
) -> list[tuple[Msg, Sent]]:
    """Produce, and pair every message with where it landed."""
    first = len(ledger.sent)
    await produce(bootstrap, planned, ledger)
    sent = ledger.sent[first:]
    assert len(sent) == len(planned)
    return [(msg, s) for (msg, _), s in zip(planned, sent, strict=True)]


async def _warm_up(
    bootstrap: str, dsn: str, env: dict[str, str], load: Workload, ledger: Ledger
) -> None:
    """One alert and one telemetry message stored: both consumers hold their
    partitions before the workload starts, so no rebalance repeats a batch."""
    warm = load.mix(
        load.json_alerts(1, 0.0, start=900_000),
        load.telemetry(4, start=datetime.now(UTC) - timedelta(minutes=45)),
    )
    await produce(bootstrap, warm, ledger)
    await eventually(lambda: _stored(dsn, env, ledger), timeout=60, what="warm-up stored")


async def _stored(dsn: str, env: dict[str, str], ledger: Ledger) -> bool:
    snap = await snapshot(dsn)
    return (
        snap.alerts >= ledger.idents("alert")
        and snap.point_times >= ledger.idents("points")
        and snap.fixes >= ledger.idents("fix")
        and (await counts(dsn))["outbox"] == 0
        and not await drained(dsn, env, ledger)
    )


async def _letters(bootstrap: str) -> dict[Origin, list[Any]]:
    """Dead-letter records by the origin their envelope names."""
    out: dict[Origin, list[Any]] = defaultdict(list)
    for r in await read_topic(bootstrap, "eriop.dlq"):
        doc = json.loads(r.value)
        out[(doc["topic"], doc["partition"], doc["offset"])].append(r)
    return dict(out)


def envelope_problems(
    msg: Msg, sent: Sent, record: Any, began: datetime, until: datetime
) -> list[str]:
    """Where a dead letter differs from docs/formats.md section 7 for its message."""
    topic, key, value, headers = msg
    assert value is not None
    code = sent.expect.ident
    doc = json.loads(record.value)
    at = f"{topic}[{sent.partition}]@{sent.offset} ({code})"
    checks: dict[str, bool] = {
        "v": doc.get("v") == 1,
        "origin": (doc["topic"], doc["partition"], doc["offset"])
        == (sent.topic, sent.partition, sent.offset),
        "error_code": doc.get("error_code") == code,
        "stage": doc.get("stage") == ERROR_CODES[code],
        "key": doc.get("key") == (key.decode() if key is not None else None)
        and "key_b64" not in doc
        and "key" in doc,
        "kafka key": record.key == key,
        "error header": (("eriop-error-code", code.encode()) in list(record.headers)),
        "original headers": all(h in list(record.headers) for h in headers),
        "value_size": doc.get("value_size") == len(value),
        "value_sha256": doc.get("value_sha256") == hashlib.sha256(value).hexdigest(),
        "value": _value_matches(doc, value, code),
        "reason": isinstance(doc.get("reason"), str) and 0 < len(doc["reason"]) <= MAX_REASON_CHARS,
        "attempts": doc.get("attempts") == 1,
        "timestamp": _within(doc.get("timestamp"), began, until),
        "failed_at": _within(doc.get("failed_at"), began, datetime.now(UTC)),
    }
    return [f"{at}: {name} wrong in {_short(doc)}" for name, ok in checks.items() if not ok]


def _value_matches(doc: dict[str, Any], value: bytes, code: str) -> bool:
    if code == "oversize":
        copied = base64.b64decode(doc.get("value_b64") or "")
        return (
            doc.get("value_truncated") is True
            and "value" not in doc
            and copied == value[:OVERSIZE_COPY_BYTES]
        )
    if "value_truncated" in doc:
        return False
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return "value" not in doc and doc.get("value_b64") == base64.b64encode(value).decode()
    return doc.get("value") == text and "value_b64" not in doc


def _within(stamp: object, lo: datetime, hi: datetime) -> bool:
    if not isinstance(stamp, str) or not stamp.endswith("Z"):
        return False
    t = parse_timestamp(stamp, "stamp")
    return lo - timedelta(seconds=1) <= t <= hi + timedelta(seconds=1)


def _short(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: (v[:80] if isinstance(v, str) else v) for k, v in doc.items()}


async def _dead_letter_counts(workers: Workers, w: WorkerProcess) -> Counter[tuple[str, ...]]:
    """eriop_dead_letters_total by (topic, stage, error_code)."""
    out: Counter[tuple[str, ...]] = Counter()
    for fam in text_string_to_metric_families(await workers.page(w)):
        for s in fam.samples:
            if s.name == "eriop_dead_letters_total" and s.value:
                out[(s.labels["topic"], s.labels["stage"], s.labels["error_code"])] += int(s.value)
    return out


def _internal_errors(w: WorkerProcess) -> str:
    lines = w.log_path.read_text(errors="replace").splitlines()
    hits = [i for i, line in enumerate(lines) if "internal_error" in line or "giving up" in line]
    return "\n".join(lines[i] for i in hits[:12])


def _unstorable(tag: str, fleet: Fleet, now: datetime) -> list[tuple[str, Msg]]:
    """(description, message): valid JSON the decoders accept, with a value that
    PostgreSQL cannot hold (text must be UTF-8; jsonb is encoded by orjson,
    which refuses lone surrogates and integers beyond 64 bits)."""
    big = 123456789012345678901234567890
    lone = "\ud800"
    when = now.replace(microsecond=0).isoformat()
    ident = fleet.vehicles[0].identifier
    frame = dc09_frame(
        f'"SIA-DCS"0001R1L1#9D01[#9D01|Nri1/BA001]{now.strftime("_%H:%M:%S,%m-%d-%Y")}'
    )
    path = "AudioClassification/Screaming"
    axis = {
        "topic": f"axis:{path}", "timestamp": round(now.timestamp() * 1000),
        "message": {"source": {}, "key": {}, "data": {"Detected": "1", "level": big}},
    }  # fmt: skip
    telemetry = {"device_id": f"UNSTORABLE-{tag}", "device_type": "probe", "time": when}
    fix = {"lat": 60.17, "lon": 24.94, "time": when}

    def j(doc: Any) -> bytes:
        return json.dumps(doc).encode()  # escapes a lone surrogate as \ud800

    return [
        ("alerts.json: lone surrogate in metadata", ("alerts.json", b"u", j(
            {"source": "unstorable", "external_id": f"{tag}-u1", "type": "panic",
             "title": "t", "metadata": {"note": lone}}), [])),
        ("alerts.alarm: lone surrogate in an envelope field", ("alerts.alarm", b"9D01", j(
            {"receiver": "rcv-1", "received_at": when, "frame": frame, "site": lone}), [])),
        ("alerts.axis: integer beyond 64 bits in a data item", (
            "alerts.axis", f"axis/ACCC8EEE0001/event/tns:axis/{path}".encode(), j(axis), [])),
        ("telemetry.raw: lone surrogate in a text value", ("telemetry.raw", b"u", j(
            {**telemetry, "metric": "status", "text": f"ok{lone}"}), [])),
        ("telemetry.raw: integer beyond 64 bits in metadata", ("telemetry.raw", b"u", j(
            {**telemetry, "metric": "count", "value": 1, "metadata": {"counter": big}}), [])),
        ("gps.raw: lone surrogate in the identifier", ("gps.raw", b"u", j(
            {**fix, "identifier": f"AMB{lone}"}), [])),
        ("gps.raw: lone surrogate in the source", ("gps.raw", ident.encode(), j(
            {**fix, "identifier": ident, "source": f"gps{lone}"}), [])),
    ]  # fmt: skip
