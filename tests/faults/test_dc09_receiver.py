"""The receiver's promise under faults: an ACK means the frame is in Kafka.

- SIGKILL of the receiver while panels (the third-party my-dc09-spt dialler,
  retrying an unanswered frame with its sequence number, as panels do) are
  sending: every frame ends stored exactly once, whether it was acknowledged
  before a kill, retransmitted after one, or sent again after a lost ACK.
- Kafka unavailable: no ACK at all, over TCP or UDP; once Kafka is back the
  panel's retransmission is acknowledged.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from my_dc09_spt.msg.dc03_msg import dc03_msg  # type: ignore[import-untyped]

from eriop.dev.stack import Broker
from eriop.receiverproc import ReceiverProcess
from pipeline.clients.kafka import ensure_topics
from pipeline.metrics import REGISTRY
from pipeline.settings import Settings
from tests.faults.conftest import Workers, eventually, read_topic, scalar, timeout_for
from tests.integration.dc09_panels import (
    KEY128,
    KEY256,
    alarm_records,
    panel,
    path_of,
    receiver_settings,
    running_receiver,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(timeout_for(300))]

PANELS = {"2001": None, "2002": None, "2003": None, "2004": None, "6C02": KEY128, "7A03": KEY256}
EVENTS_PER_PANEL = 30
KILLS = 2


@dataclass
class PanelLog:
    acked: set[int] = field(default_factory=set)
    attempts: Counter[int] = field(default_factory=Counter)


def run_panel(
    account: str, port: int, key: str | None, log: PanelLog, stop: threading.Event
) -> None:
    """A panel's event loop: each event is re-sent, same sequence number, until ACKed."""
    spt = panel(account, port, key_hex=key, line=1)
    path = path_of(spt)
    for seq in range(1, EVENTS_PER_PANEL + 1):
        msg = dc03_msg.dc03event(account, {"code": "BA", "zone": str(seq), "area": "1"})
        # every tenth event's first ACK is "lost": the panel sends it again
        lost = 1 if seq % 10 == 0 else 0
        while not stop.is_set():
            log.attempts[seq] += 1
            try:
                if spt.transfer_msg(seq, "SIA-DCS", msg, path):
                    if lost:
                        lost -= 1
                        continue
                    log.acked.add(seq)
                    break
            except Exception:  # the library raises on an answer it cannot read
                pass
            time.sleep(0.2)  # the panel's retry delay
        time.sleep(0.05)


def stored_ids(rows: list[str]) -> Counter[tuple[str, int]]:
    """(account, seq) of each stored alarm alert, from ``dc09:<site>:<seq>:...``."""
    out: Counter[tuple[str, int]] = Counter()
    for external_id in rows:
        _, site, seq, *_ = external_id.split(":")
        out[(site, int(seq))] += 1
    return out


async def test_sigkill_of_the_receiver_loses_and_duplicates_no_alarm(
    broker: Broker, env: dict[str, str], workers: Workers, tmp_path: Path, fresh_db: str
) -> None:
    accounts = json.dumps({a: {"key": k} for a, k in PANELS.items() if k})
    env = {**env, "ERIOP_ALARM__ACCOUNTS": accounts}
    await ensure_topics(Settings(kafka_bootstrap=broker.bootstrap), ["alerts.alarm"])
    worker = workers.start(env, "worker")
    receiver = ReceiverProcess(env, tmp_path, "dc09-0").start()
    started = [receiver]
    await asyncio.to_thread(receiver.wait_healthy, 60)
    await workers.healthy(worker)

    logs = {a: PanelLog() for a in PANELS}
    stop = threading.Event()
    threads = [
        threading.Thread(target=run_panel, args=(a, receiver.dc09_port, k, logs[a], stop))
        for a, k in PANELS.items()
    ]
    for t in threads:
        t.start()
    total = len(PANELS) * EVENTS_PER_PANEL
    try:
        for k in range(1, KILLS + 1):
            goal = total * k // (KILLS + 1)

            async def progressed(goal: int = goal) -> bool:
                return sum(len(log.acked) for log in logs.values()) >= goal

            await eventually(progressed, timeout=120, what=f"{goal} acknowledged frames")
            receiver.kill()
            await asyncio.to_thread(receiver.proc.wait)  # type: ignore[union-attr]
            receiver = ReceiverProcess(env, tmp_path, f"dc09-{k}", receiver.dc09_port).start()
            started.append(receiver)
            await asyncio.to_thread(receiver.wait_healthy, 60)

        async def all_acked() -> bool:
            return all(len(log.acked) == EVENTS_PER_PANEL for log in logs.values())

        await eventually(all_acked, timeout=180, what="every frame acknowledged")
    finally:
        stop.set()
        for t in threads:
            await asyncio.to_thread(t.join)
        for r in started:
            if r.proc is not None and r.proc.poll() is None:
                r.kill()

    expected = {(a, seq) for a in PANELS for seq in range(1, EVENTS_PER_PANEL + 1)}

    async def stored() -> bool:
        n: int = await scalar(fresh_db, "SELECT count(*) FROM alerts WHERE source = 'alarm_system'")
        return n >= total

    await eventually(stored, timeout=120, what=f"{total} alarm alerts stored")
    rows = await scalar(
        fresh_db, "SELECT array_agg(external_id) FROM alerts WHERE source = 'alarm_system'"
    )
    ids = stored_ids(list(rows))
    assert set(ids) == expected
    assert max(ids.values()) == 1
    # every panel's frames were check-ins for line supervision (written by the receiver)
    panel_accounts = list(PANELS)

    async def supervised() -> bool:
        n: int = await scalar(
            fresh_db,
            "SELECT count(*) FROM line_supervision WHERE account = ANY($1::text[])",
            panel_accounts,
        )
        return n == len(panel_accounts)

    await eventually(supervised, timeout=30, what="a line_supervision row per panel")
    on_kafka = len(await read_topic(broker.bootstrap, "alerts.alarm"))
    retried = sum(sum(log.attempts.values()) for log in logs.values()) - total
    print(f"{total} events, {retried} retransmissions, {on_kafka} records on alerts.alarm")
    # the lost ACKs at least were retransmitted, and deduplicated above
    assert on_kafka >= total + len(PANELS) * (EVENTS_PER_PANEL // 10)


def _acks() -> float:
    return (
        REGISTRY.get_sample_value("eriop_receiver_replies_total", {"kind": "ACK", "reason": "ok"})
        or 0.0
    )


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_kafka_unavailable_means_no_ack_at_all(broker: Broker, transport: str) -> None:
    settings = receiver_settings(broker.bootstrap, ack_timeout_s=0.5)
    msg = dc03_msg.dc03event("1234", {"code": "FA", "zone": "3", "area": "1"})
    async with running_receiver(settings) as service:
        spt = panel("1234", service.port, transport=transport, line=1)
        path = path_of(spt)
        assert await asyncio.to_thread(spt.transfer_msg, 41, "SIA-DCS", msg, path)
        broker.stop()
        before = _acks()
        for _ in range(2):
            assert not await asyncio.to_thread(spt.transfer_msg, 42, "SIA-DCS", msg, path)
        assert _acks() == before
        broker.start()
        await ensure_topics(settings, ["alerts.alarm"])

        async def acked() -> bool:
            return bool(await asyncio.to_thread(spt.transfer_msg, 42, "SIA-DCS", msg, path))

        await eventually(acked, timeout=60, what="an ACK once Kafka is back")
        assert _acks() == before + 1
    records = await alarm_records(broker.bootstrap, 1)
    assert any('"SIA-DCS"0042' in json.loads(r.value)["frame"] for r in records)
