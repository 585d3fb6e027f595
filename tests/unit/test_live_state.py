"""Live state held for Redis: the newest last-seen per device wins, by time."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from pipeline.sinks.redis.live import RedisLive
from pipeline.sinks.redis.live_state import LiveState


class _Recorder:
    def __init__(self) -> None:
        self.devices: dict[str, tuple[str, str]] = {}

    async def touch_devices(self, seen: Mapping[str, tuple[str, str]]) -> None:
        self.devices.update(seen)

    async def update_positions(self, items: Any) -> None:
        pass

    async def publish(self, channel: str, payloads: Any) -> int:
        return 0


async def test_a_fraction_of_a_second_later_is_newer_than_the_whole_second() -> None:
    redis = _Recorder()
    live = LiveState(cast(RedisLive, redis))
    whole = datetime(2026, 11, 26, 13, 2, 48, tzinfo=UTC)
    later = datetime(2026, 11, 26, 13, 2, 48, 500_000, tzinfo=UTC)
    live.device_seen("d1", whole, "probe")
    live.device_seen("d1", later, "probe")
    live.device_seen("d2", later, "probe")
    live.device_seen("d2", whole, "probe")  # late, must not move it back
    assert await live.sync()
    assert redis.devices == {
        "d1": ("2026-11-26T13:02:48.500000Z", "probe"),
        "d2": ("2026-11-26T13:02:48.500000Z", "probe"),
    }
