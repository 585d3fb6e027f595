"""Device last-seen and positions in Redis, each written by one script call per batch."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from pipeline.sinks.redis import live as redis_live
from pipeline.sinks.redis.live import RedisLive


async def _hashes(url: str, ids: list[str]) -> dict[str, dict[bytes, bytes]]:
    client = aioredis.from_url(url)
    try:
        return {i: await client.hgetall(f"eriop:device:{i}") for i in ids}
    finally:
        await client.aclose()


async def test_touch_devices_sets_both_fields_of_every_device(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_live, "_SCRIPT_CHUNK", 2)  # several calls per batch
    live = RedisLive(redis_url)
    await live.start()
    try:
        first = {f"d{i}": (f"2026-11-26T10:00:0{i}Z", f"type{i}") for i in range(5)}
        await live.touch_devices(first)
        got = await _hashes(redis_url, list(first))
        assert got == {
            d: {b"last_seen": t.encode(), b"device_type": k.encode()} for d, (t, k) in first.items()
        }
        # after a restart Redis has forgotten the script; the call loads it again
        await live.client.script_flush()
        await live.touch_devices({"d1": ("2026-11-26T11:00:00Z", "type1b")})
        again = await _hashes(redis_url, ["d0", "d1"])
        assert again["d1"] == {b"last_seen": b"2026-11-26T11:00:00Z", b"device_type": b"type1b"}
        assert again["d0"] == got["d0"]
    finally:
        await live.close()


async def test_update_positions_sets_hashes_and_geo_set(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_live, "_SCRIPT_CHUNK", 2)
    states = [
        (f"r{i}", {"lat": str(60 + i / 10), "lon": str(24 + i / 10), "source": "avl"}, 24 + i / 10,
         60 + i / 10)
        for i in range(3)
    ]  # fmt: skip
    states.append(("r9", {}, 25.5, 61.5))  # no fields: the geo set only
    # text that JSON escapes or carries as it is, back byte for byte
    states.append(("r10", {"source": 'é "q" \\ \x01 \u2028 😀', "speed": "1e-05"}, 25.1, 61.1))
    live = RedisLive(redis_url)
    await live.start()
    try:
        await live.update_positions(states)
        client = live.client
        for rid, fields, lon, lat in states:
            got = await client.hgetall(f"eriop:resource:{rid}")
            assert got == {k.encode(): v.encode() for k, v in fields.items()}
            ((glon, glat),) = await client.geopos(redis_live.GEO_RESOURCES, rid)
            assert abs(glon - lon) < 1e-5
            assert abs(glat - lat) < 1e-5
    finally:
        await live.close()
