"""The receiver scenario of ``eriop bench --receiver``: many panels on TCP at once.

``panels`` connections stay open to a real ``eriop dc09-receiver`` process
(with its own embedded broker); together they send ``rate`` frames per
second for ``seconds``, each panel on its own schedule. Reported: frames/s
acknowledged, the ACK latency seen by the panels (from the frame's last byte
written to the reply's CR read) and the frames that never got an ACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from eriop.bench.stack import broker
from eriop.receiverproc import ReceiverProcess
from eriop.traffic import dc09_frame
from pipeline.clients.kafka import ensure_topics
from pipeline.runtime.metrics_merge import metric_sum
from pipeline.settings import Settings

#: a panel that got no reply in this long counts the frame as never acknowledged
REPLY_TIMEOUT_S = 5.0
TARGET_P99_MS = 30.0


@dataclass
class Tally:
    sent: int = 0
    acked: int = 0
    other: int = 0
    unacked: int = 0
    connect_failed: int = 0
    latencies: list[float] = field(default_factory=list)


def raise_fd_limit(want: int) -> None:
    """Many sockets: the soft limit of open files up to ``want`` (at most the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _frame(account: str, seq: int) -> bytes:
    stamp = datetime.now(UTC).strftime("_%H:%M:%S,%m-%d-%Y")
    body = f'"SIA-DCS"{seq:04d}L1#{account}[#{account}|Nri1/BA{seq % 100:03d}]{stamp}'
    return dc09_frame(body).encode("ascii")


async def _panel(
    i: int, port: int, interval: float, start: float, until: float, tally: Tally
) -> None:
    account = f"{0xA000 + i:X}"
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        tally.connect_failed += 1
        return
    seq = 0
    due = start + random.uniform(0, interval)
    try:
        while due < until:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            due += interval
            seq = seq % 9999 + 1
            writer.write(_frame(account, seq))
            tally.sent += 1
            began = time.perf_counter()
            try:
                reply = await asyncio.wait_for(reader.readuntil(b"\r"), REPLY_TIMEOUT_S)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                tally.unacked += 1
                return
            if b'"ACK"' in reply:
                tally.latencies.append(time.perf_counter() - began)
                tally.acked += 1
            else:
                tally.other += 1
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def _pct(sorted_s: list[float], q: float) -> float:
    if not sorted_s:
        return 0.0
    k = min(len(sorted_s) - 1, max(0, round(q * (len(sorted_s) - 1))))
    return round(sorted_s[k] * 1000, 2)


async def receiver_flow(
    log_dir: Path,
    say: Callable[[str], None],
    *,
    panels: int = 1000,
    rate: float = 500.0,
    seconds: float = 30.0,
) -> dict[str, Any]:
    raise_fd_limit(4 * panels + 256)
    with broker(log_dir) as b:
        await ensure_topics(Settings(kafka_bootstrap=b.bootstrap), ["alerts.alarm"])
        env = {
            "ERIOP_KAFKA_BOOTSTRAP": b.bootstrap,
            "ERIOP_EMBEDDED_BROKER": "true",
            "ERIOP_KAFKA__IDEMPOTENCE": "false",
            "ERIOP_RECEIVER__HOST": "127.0.0.1",
            "ERIOP_RECEIVER__MAX_CONNECTIONS": str(2 * panels + 100),
            # every bench panel comes from 127.0.0.1
            "ERIOP_RECEIVER__MAX_CONNECTIONS_PER_PEER": str(2 * panels + 100),
            "ERIOP_LOG_LEVEL": "warning",
            # no database here: line supervision is measured elsewhere
            "ERIOP_ALARM__CHECKIN_INTERVAL_S": "0",
        }
        receiver = ReceiverProcess(env, log_dir, "dc09-bench").start()
        try:
            await asyncio.to_thread(receiver.wait_healthy, 60)
            say(f"receiver: {panels} TCP panels, {rate:g} frames/s for {seconds:g} s")
            tally = Tally()
            interval = panels / rate
            start = time.perf_counter() + 2.0  # connections open first
            until = start + seconds
            tasks = [
                asyncio.create_task(_panel(i, receiver.dc09_port, interval, start, until, tally))
                for i in range(panels)
            ]
            await asyncio.gather(*tasks)
            elapsed = time.perf_counter() - start
            _, page = await asyncio.to_thread(receiver.get, "/metrics")
            acks_seen = metric_sum(page.decode(), "eriop_receiver_replies_total", kind="ACK")
            inside = _histogram_quantiles(page.decode(), "eriop_receiver_ack_latency_seconds")
        finally:
            receiver.stop(15)
    lat = sorted(tally.latencies)
    p99 = _pct(lat, 0.99)
    return {
        "panels": panels,
        "target_frames_per_s": rate,
        "seconds": round(elapsed, 1),
        "frames_sent": tally.sent,
        "frames_acked": tally.acked,
        "frames_per_s": round(tally.acked / elapsed, 1) if elapsed > 0 else 0.0,
        "never_acknowledged": tally.sent - tally.acked,
        "timed_out": tally.unacked,
        "other_replies": tally.other,
        "connect_failed": tally.connect_failed,
        "receiver_acks_counted": int(acks_seen),
        "ack_latency_ms": {
            "p50": _pct(lat, 0.50),
            "p95": _pct(lat, 0.95),
            "p99": p99,
            "max": round(lat[-1] * 1000, 2) if lat else 0.0,
        },
        # the receiver's own view (frame complete to ACK written), bucket upper bounds
        "receiver_side_ack_ms_at_most": inside,
        "target_p99_ms": TARGET_P99_MS,
        "p99_within_target": p99 <= TARGET_P99_MS,
    }


def _histogram_quantiles(page: str, name: str) -> dict[str, float]:
    """p50/p95/p99 of a Prometheus histogram, as the upper bound of their bucket (ms)."""
    buckets: list[tuple[float, float]] = []
    for fam in text_string_to_metric_families(page):
        for sample in fam.samples:
            if sample.name == f"{name}_bucket":
                buckets.append((float(sample.labels["le"]), sample.value))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0.0
    out: dict[str, float] = {}
    for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        bound = next((le for le, n in buckets if total and n >= q * total), float("inf"))
        out[label] = round(bound * 1000, 1)
    return out


def table(result: dict[str, Any]) -> str:
    lat = result["ack_latency_ms"]
    return "\n".join(
        [
            "| receiver | value |",
            "|---|---|",
            f"| panels (TCP, open together) | {result['panels']} |",
            f"| frames/s acknowledged (target {result['target_frames_per_s']:g}) "
            f"| {result['frames_per_s']:g} |",
            f"| frames sent / acknowledged | {result['frames_sent']} / {result['frames_acked']} |",
            f"| never acknowledged | {result['never_acknowledged']} |",
            f"| ACK latency p50 / p95 / p99 / max (ms) "
            f"| {lat['p50']} / {lat['p95']} / {lat['p99']} / {lat['max']} |",
            f"| p99 within {result['target_p99_ms']:g} ms | {result['p99_within_target']} |",
            "| receiver-side ACK latency p50 / p95 / p99, at most (ms) | "
            + " / ".join(str(v) for v in result["receiver_side_ack_ms_at_most"].values())
            + " |",
            f"| connections that failed to open | {result['connect_failed']} |",
        ]
    )
