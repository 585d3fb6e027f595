"""``eriop dlq list`` and ``eriop dlq replay`` against the real broker."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from eriop.dev.stack import Broker, free_port
from eriop.dlq.command import run_dlq
from pipeline.clients.kafka import ensure_topics, make_producer
from pipeline.errors import EXIT_UNAVAILABLE
from pipeline.settings import Settings
from pipeline.sinks.kafka.dlq import DeadLetterPublisher, build_dead_letter
from pipeline.sources.kafka_batch import to_raw
from schemas.records import RawRecord

pytestmark = pytest.mark.integration

BINARY_FRAME = b'\n\xff\xfe0042"SIA-DCS"0042R2L3#4711[#4711|Nri2/BA017]\r'
BINARY_KEY = b"\x00\xffacct"


def settings_for(broker: Broker) -> Settings:
    return Settings(
        kafka_bootstrap=broker.bootstrap,
        embedded_broker=True,
        kafka={"idempotence": False, "partitions": 2},
    )


async def read_topic(bootstrap: str, topic: str) -> list[RawRecord]:
    """Every record of ``topic`` up to its current end, by partition and offset."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        await consumer.topics()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[RawRecord] = []
        # until a poll comes back empty: the embedded broker reports partition ends early
        while batch := await consumer.getmany(*tps, timeout_ms=1500):
            out += [to_raw(r) for records in batch.values() for r in records]
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


BAD = [
    # topic, key, value, headers, stage, error_code, reason
    ("alerts.json", b"k1", b"{bad", [("traceparent", b"00-abc-01")], "decode", "not_json",
     "unparseable JSON at line 1 column 2"),
    ("alerts.json", b"k2", b"[1, 2]", [], "decode", "unknown_format", "a JSON array"),
    ("alerts.json", None, b'{"title": "x"', [], "decode", "not_json", "unexpected end of data"),
    ("alerts.json", b"k3", b"{", [], "decode", "not_json", "unexpected end"),
    ("alerts.alarm", BINARY_KEY, BINARY_FRAME, [], "decode", "bad_checksum",
     "DC-09 CRC field 0042 does not match"),
    ("telemetry.raw", b"big", b"x" * 70_000, [], "decode", "oversize", "value larger than 65536"),
    ("gps.raw", b"unit-9", b'{"unit": "nobody"}', [], "normalize", "unknown_device",
     "GPS resource not found"),
]  # fmt: skip


@pytest.fixture
async def letters(broker: Broker) -> dict[str, list[RawRecord]]:
    """Bad messages on their topics and their dead letters on eriop.dlq, as the worker
    would publish them; the original records by error code."""
    settings = settings_for(broker)
    await ensure_topics(settings)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        for topic, key, value, headers, *_ in BAD:
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()
    originals: dict[str, list[RawRecord]] = {}
    items = []
    for topic in {b[0] for b in BAD}:
        for record in await read_topic(broker.bootstrap, topic):
            spec = next(b for b in BAD if b[0] == topic and b[2] == record.value)
            stage, code, reason = spec[4], spec[5], spec[6]
            letter = build_dead_letter(
                record, stage=stage, error_code=code, reason=reason, now=datetime.now(UTC)
            )
            items.append((record, letter))
            originals.setdefault(code, []).append(record)
    dlq_producer = make_producer(settings)
    await dlq_producer.start()
    try:
        await DeadLetterPublisher(dlq_producer).publish(items)
    finally:
        await dlq_producer.stop()
    return originals


def ns(**kw: object) -> argparse.Namespace:
    return argparse.Namespace(**kw)


async def test_list_groups_dead_letters_by_error_code(
    broker: Broker, letters: dict[str, list[RawRecord]], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(broker)
    assert await run_dlq(settings, ns(dlq_command="list", samples=5, topic=None)) == 0
    out = capsys.readouterr().out
    head = "eriop.dlq: 7 dead letters in 5 error codes, once per original record (no repeats)"
    assert head in out
    heads = re.findall(r"^(\w+): (\d+)  stage (.+?)  topics (.+)$", out, re.MULTILINE)
    assert heads[0] == ("not_json", "3", "decode (3)", "alerts.json (3)")
    assert sorted(heads[1:]) == [
        ("bad_checksum", "1", "decode (1)", "alerts.alarm (1)"),
        ("oversize", "1", "decode (1)", "telemetry.raw (1)"),
        ("unknown_device", "1", "normalize (1)", "gps.raw (1)"),
        ("unknown_format", "1", "decode (1)", "alerts.json (1)"),
    ]
    for r in letters["not_json"]:
        assert f"    alerts.json[{r.partition}]@{r.offset}  failed " in out
    assert "unparseable JSON at line 1 column 2" in out
    gps = letters["unknown_device"][0]
    assert f"gps.raw[{gps.partition}]@{gps.offset}" in out

    # fewer samples, one topic
    assert await run_dlq(settings, ns(dlq_command="list", samples=1, topic="alerts.json")) == 0
    out = capsys.readouterr().out
    assert "eriop.dlq: 4 dead letters from alerts.json in 2 error codes" in out
    assert "bad_checksum" not in out
    assert len(re.findall(r"^    alerts\.json\[", out, re.MULTILINE)) == 2


async def test_repeats_of_one_original_are_counted_and_replayed_once(
    broker: Broker, letters: dict[str, list[RawRecord]], capsys: pytest.CaptureFixture[str]
) -> None:
    """A record dead-lettered again (the worker stopped before storing its offset)
    is one failure: list counts it once and says how many repeats it folded;
    replay sends it once."""
    settings = settings_for(broker)
    first, second = letters["not_json"][:2]
    repeats = [
        (r, build_dead_letter(r, stage="decode", error_code="not_json", reason="again",
                              now=datetime.now(UTC)))
        for r in (first, first, second)
    ]  # fmt: skip
    producer = make_producer(settings)
    await producer.start()
    try:
        await DeadLetterPublisher(producer).publish(repeats)
    finally:
        await producer.stop()

    assert await run_dlq(settings, ns(dlq_command="list", samples=5, topic=None)) == 0
    out = capsys.readouterr().out
    assert (
        "eriop.dlq: 7 dead letters in 5 error codes, once per original record "
        "(3 repeats of an already counted record folded)"
    ) in out
    assert re.search(r"^not_json: 3  stage decode \(3\)  topics alerts.json \(3\)$", out, re.M)
    assert "again" not in out  # the first dead letter of each record is the one shown

    args = ns(dlq_command="replay", error_code="not_json", topic=None, dry_run=True)
    assert await run_dlq(settings, args) == 0
    out = capsys.readouterr().out
    assert out.count("would replay alerts.json[") == 3
    for r in letters["not_json"]:
        assert out.count(f"would replay alerts.json[{r.partition}]@{r.offset} ") == 1
    assert (
        "would replay 3 dead letters to alerts.json (3); "
        "3 repeats of an already counted record folded; nothing was sent"
    ) in out


async def test_replay_sends_the_original_bytes_key_and_headers_back(
    broker: Broker, letters: dict[str, list[RawRecord]], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(broker)
    before = {t: await read_topic(broker.bootstrap, t) for t in ("alerts.json", "alerts.alarm")}

    # a dry run prints what it would send and sends nothing
    args = ns(dlq_command="replay", error_code="not_json", topic=None, dry_run=True)
    assert await run_dlq(settings, args) == 0
    out = capsys.readouterr().out
    assert out.count("would replay alerts.json[") == 3
    assert "would replay 3 dead letters to alerts.json (3); nothing was sent" in out
    assert await read_topic(broker.bootstrap, "alerts.json") == before["alerts.json"]

    args = ns(dlq_command="replay", error_code="not_json", topic=None, dry_run=False)
    assert await run_dlq(settings, args) == 0
    out = capsys.readouterr().out
    assert "replayed 3 dead letters to alerts.json (3)" in out
    known = {(r.partition, r.offset) for r in before["alerts.json"]}
    new = [r for r in await read_topic(broker.bootstrap, "alerts.json")
           if (r.partition, r.offset) not in known]  # fmt: skip
    assert len(new) == 3
    by_value = {r.value: r for r in new}
    for original in letters["not_json"]:
        replayed = by_value[original.value]
        assert replayed.key == original.key
        headers = dict(replayed.headers)
        assert "eriop-error-code" not in headers
        assert headers["eriop-replayed-from"] == f"{original.partition}:{original.offset}".encode()
        assert [h for h in replayed.headers if h[0] != "eriop-replayed-from"] == list(
            original.headers
        )

    # a binary value and key come back byte for byte
    args = ns(dlq_command="replay", error_code=None, topic="alerts.alarm", dry_run=False)
    assert await run_dlq(settings, args) == 0
    capsys.readouterr()
    alarm = await read_topic(broker.bootstrap, "alerts.alarm")
    [replayed] = [r for r in alarm if r not in before["alerts.alarm"]]
    assert (replayed.key, replayed.value) == (BINARY_KEY, BINARY_FRAME)

    # a cut copy cannot be replayed: it is reported, nothing is sent
    tele = await read_topic(broker.bootstrap, "telemetry.raw")
    args = ns(dlq_command="replay", error_code="oversize", topic=None, dry_run=False)
    assert await run_dlq(settings, args) == 0
    out = capsys.readouterr().out
    assert "only the first 64 KiB of the 70000 bytes were kept" in out
    assert "replayed 0 dead letters; skipped 1 that cannot be replayed (oversize (1))" in out
    assert await read_topic(broker.bootstrap, "telemetry.raw") == tele


async def test_the_command_line(broker: Broker, letters: dict[str, list[RawRecord]]) -> None:
    env = {**os.environ, "ERIOP_KAFKA_BOOTSTRAP": broker.bootstrap}
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "eriop.cli", "dlq", "list", "--samples", "0"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "not_json: 3" in done.stdout
    assert "    alerts.json[" not in done.stdout
    dead = f"127.0.0.1:{free_port()}"
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "eriop.cli", "dlq", "list"],
        env={**env, "ERIOP_KAFKA_BOOTSTRAP": dead}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == EXIT_UNAVAILABLE
    assert "eriop dlq:" in done.stderr
    assert "Traceback" not in done.stderr
