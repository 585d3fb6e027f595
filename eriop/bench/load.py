"""The load ``eriop bench`` offers: telemetry, GPS fixes and stamped alerts.

Every telemetry point is unique per (device, metric, time) and every fix per
(resource, time), and fixes move a plausible 10 m per second, so the pipeline
stores everything and the benchmark measures ingest rather than dedupe or
plausibility rejections. A device or vehicle always goes to the same
partition (per-device order, as with keyed production), and partitions get
equal shares, so consumers in one group get equal work.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from aiokafka import AIOKafkaProducer

from eriop.traffic import Fleet

TELEMETRY = "telemetry.raw"
GPS = "gps.raw"
ALERTS = "alerts.json"
ALERT_SOURCE = "eriop_bench"
_STEP_M = 10.0
_M_PER_DEG = 111_320.0


@dataclass(frozen=True, slots=True)
class Out:
    """One message to produce, with its partition chosen up front."""

    topic: str
    key: bytes
    value: bytes
    partition: int


def telemetry(
    n_messages: int,
    points: int,
    *,
    start: datetime,
    partitions: int,
    devices: int = 2000,
    prefix: str = "BENCH",
) -> list[Out]:
    """Both telemetry formats, alternating; ``points`` rows per message."""
    out: list[Out] = []
    for i in range(n_messages):
        d = i % devices
        device = f"{prefix}-{d:05d}"
        t = start + timedelta(milliseconds=i)
        if i % 2:
            pack: list[dict[str, object]] = [
                {"bn": f"{device}:", "bt": t.timestamp(), "n": "m0", "u": "Cel", "v": i % 1000}
            ]
            pack += [{"n": f"m{j}", "v": j * 1.5} for j in range(1, points)]
            body = orjson.dumps(pack)
        else:
            iso = t.isoformat()
            body = orjson.dumps(
                [{"device_id": device, "device_type": "probe", "time": iso,
                  "metric": f"m{j}", "value": j} for j in range(points)]
            )  # fmt: skip
        out.append(Out(TELEMETRY, device.encode(), body, d % partitions))
    return out


def gps(fleet: Fleet, n_fixes: int, *, end: datetime, partitions: int) -> list[Out]:
    """Round-robin over the fleet, one fix per vehicle per second, ending at ``end``."""
    vehicles = fleet.vehicles
    rounds = math.ceil(n_fixes / len(vehicles))
    first = end - timedelta(seconds=rounds)
    out: list[Out] = []
    for j in range(n_fixes):
        k, idx = divmod(j, len(vehicles))
        v = vehicles[idx]
        heading = (idx * 37) % 360
        # straight on at 10 m/s: 10 m between a vehicle's consecutive fixes
        lat = v.lat + k * _STEP_M * math.cos(math.radians(heading)) / _M_PER_DEG
        lon = v.lon + k * _STEP_M * math.sin(math.radians(heading)) / (
            _M_PER_DEG * math.cos(math.radians(v.lat))
        )
        fix = {
            "resource_id": str(v.id), "lat": round(lat, 7), "lon": round(lon, 7),
            "time": (first + timedelta(seconds=k)).isoformat(), "speed": _STEP_M,
            "heading": float(heading), "accuracy": 5,
        }  # fmt: skip
        out.append(Out(GPS, v.identifier.encode(), orjson.dumps(fix), idx % partitions))
    return out


def alert(prefix: str, seq: int, stamp_ns: int) -> bytes:
    """An alerts.json message whose external_id carries its produce time."""
    return orjson.dumps(
        {
            "source": ALERT_SOURCE,
            "external_id": f"{prefix}-{seq}-{stamp_ns}",
            "type": "panic",
            "severity": 2,
            "title": "Benchmark lone worker alarm",
            "location": {"lon": 24.94, "lat": 60.17},
            "occurred_at": datetime.now(UTC).isoformat(),
        }
    )


def stamp_of(external_id: str, prefix: str) -> int | None:
    """The produce time (ns) in an external_id this run made, else None."""
    if not external_id.startswith(prefix + "-"):
        return None
    try:
        return int(external_id.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return None


def producer(bootstrap: str, *, linger_ms: int = 5) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=linger_ms, max_batch_size=262144, acks=1
    )


async def produce(
    bootstrap: str, messages: Iterable[Out], *, window: int = 20000
) -> dict[tuple[str, int], int]:
    """Produce everything and wait for the broker; the end offset of each partition."""
    p = producer(bootstrap)
    await p.start()
    ends: dict[tuple[str, int], int] = {}
    try:
        pending: list[asyncio.Future[object]] = []
        for m in messages:
            pending.append(await p.send(m.topic, m.value, key=m.key, partition=m.partition))
            if len(pending) >= window:
                _ends(await asyncio.gather(*pending), ends)
                pending = []
        _ends(await asyncio.gather(*pending), ends)
    finally:
        await p.stop()
    return ends


def _ends(results: Sequence[object], ends: dict[tuple[str, int], int]) -> None:
    for md in results:
        key = (md.topic, md.partition)  # type: ignore[attr-defined]
        ends[key] = max(ends.get(key, 0), md.offset + 1)  # type: ignore[attr-defined]
