"""Live state in Redis for dispatchers' consoles.

Names (docs/formats.md and the README's contract):
  channel ``eriop.alerts`` and capped stream ``eriop:stream:alerts`` - new alerts;
  channel ``eriop.alert_updates`` - restores, cancels and other changes;
  channel ``eriop.locations`` - coalesced position updates;
  channel ``eriop.geofence`` - geofence enter/leave events;
  hash ``eriop:resource:<id>`` and geo set ``eriop:geo:resources`` - positions;
  hash ``eriop:device:<id>`` - telemetry last-seen;
  hash ``eriop:axis:state:<serial>`` - Axis edge state.
redis-py exceptions are translated here into :class:`RedisUnavailable`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from itertools import chain
from typing import Any, Final, TypeVar, cast

import orjson
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from pipeline import metrics
from pipeline.errors import RedisUnavailable
from schemas.intents import SetRedis

log = logging.getLogger(__name__)

CH_ALERTS: Final = "eriop.alerts"
CH_ALERT_UPDATES: Final = "eriop.alert_updates"
CH_LOCATIONS: Final = "eriop.locations"
CH_GEOFENCE: Final = "eriop.geofence"
STREAM_ALERTS: Final = "eriop:stream:alerts"
GEO_RESOURCES: Final = "eriop:geo:resources"
STREAM_MAXLEN: Final = 100_000

T = TypeVar("T")

# A batch's devices (or positions) in one script call: as a pipeline of HSETs,
# building the commands and parsing the replies cost the client about 20 us of
# CPU per device, against about 5 this way.
_TOUCH_DEVICES: Final = """
for i, key in ipairs(KEYS) do
  redis.call('HSET', key, 'last_seen', ARGV[2 * i - 1], 'device_type', ARGV[2 * i])
end
return #KEYS
"""
# The positions as one JSON argument, [[id, lon, lat, field, value, ...], ...],
# every item text: the client packs each argument in Python (about 0.25 us),
# and a position of nine fields as arguments of their own was 22 of them.
_UPDATE_POSITIONS: Final = """
local items = cjson.decode(ARGV[1])
for i, item in ipairs(items) do
  if #item > 3 then
    redis.call('HSET', KEYS[i + 1], unpack(item, 4))
  end
  redis.call('GEOADD', KEYS[1], item[2], item[3], item[1])
end
return #items
"""
_SCRIPT_CHUNK: Final = 5000


def resource_key(resource_id: object) -> str:
    return f"eriop:resource:{resource_id}"


def device_key(device_id: object) -> str:
    return f"eriop:device:{device_id}"


class RedisLive:
    """Owns the Redis client; every call raises RedisUnavailable on failure."""

    def __init__(
        self, url: str, *, stream_maxlen: int = STREAM_MAXLEN, cooldown_s: float = 1.0
    ) -> None:
        self._url = url
        self._maxlen = stream_maxlen
        self._client: aioredis.Redis | None = None
        # after a failure, calls fail fast for a moment instead of each waiting
        # for its own timeout: an outage must not slow the database path down
        self._cooldown = cooldown_s
        self._down_until = 0.0
        self._last_error = ""
        self._touch: AsyncScript | None = None
        self._positions: AsyncScript | None = None

    async def start(self) -> None:
        self._client = aioredis.from_url(
            self._url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=15
        )
        await self._call(self.client.ping)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            self._touch = self._positions = None
            await client.aclose()

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            raise RedisUnavailable("redis client is not started")
        return self._client

    async def health(self) -> dict[str, Any]:
        try:
            await self._call(self.client.ping, probe=True)
            return {"ok": True}
        except RedisUnavailable as exc:
            return {"ok": False, "error": exc.reason[:200]}

    async def _call(
        self, fn: Callable[..., Awaitable[T]], *args: Any, probe: bool = False, **kwargs: Any
    ) -> T:
        if not probe and time.monotonic() < self._down_until:
            raise RedisUnavailable(f"redis unavailable: {self._last_error}")
        try:
            result = await fn(*args, **kwargs)
        except (RedisError, OSError) as exc:
            self._down_until = time.monotonic() + self._cooldown
            self._last_error = str(exc)[:200]
            raise RedisUnavailable(f"redis unavailable: {exc}") from exc
        self._down_until = 0.0
        return result

    async def publish_alerts(self, payloads: Sequence[Mapping[str, Any]]) -> None:
        """One pub/sub message and one stream entry per new alert."""
        if not payloads:
            return
        pipe = self.client.pipeline(transaction=False)
        for payload in payloads:
            body = orjson.dumps(payload)
            pipe.xadd(STREAM_ALERTS, {"alert": body}, maxlen=self._maxlen, approximate=True)
            pipe.publish(CH_ALERTS, body)
        await self._call(pipe.execute)
        metrics.REDIS_PUBLISH.labels(CH_ALERTS, "ok").inc(len(payloads))

    async def publish(self, channel: str, payloads: Iterable[Mapping[str, Any]]) -> int:
        pipe = self.client.pipeline(transaction=False)
        n = 0
        for payload in payloads:
            pipe.publish(channel, orjson.dumps(payload))
            n += 1
        if n:
            await self._call(pipe.execute)
            metrics.REDIS_PUBLISH.labels(channel, "ok").inc(n)
        return n

    async def apply(self, sets: Sequence[SetRedis]) -> None:
        if not sets:
            return
        pipe = self.client.pipeline(transaction=False)
        for s in sets:
            pipe.set(s.key, s.value, ex=s.ttl_s)
        await self._call(pipe.execute)

    async def exists(self, key: str) -> bool:
        return bool(await self._call(self.client.exists, key))

    async def set_if_absent(self, key: str, value: str, *, ttl_s: int) -> bool:
        return bool(await self._call(self.client.set, key, value, nx=True, ex=ttl_s))

    async def set_value(self, key: str, value: str) -> None:
        await self._call(self.client.set, key, value)

    async def delete(self, key: str) -> None:
        await self._call(self.client.delete, key)

    async def append_stream(self, stream: str, bodies: Sequence[bytes]) -> None:
        """Entries ``{"alert": body}`` at the end of a capped stream, in order."""
        pipe = self.client.pipeline(transaction=False)
        for body in bodies:
            pipe.xadd(stream, {"alert": body}, maxlen=self._maxlen, approximate=True)
        if bodies:
            await self._call(pipe.execute)

    async def existing(self, keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        values = await self._call(self.client.mget, list(keys))
        return {k for k, v in zip(keys, values, strict=True) if v is not None}

    async def hget(self, key: str, field: str) -> str | None:
        value = await self._call(self.client.hget, key, field)
        return value.decode() if isinstance(value, bytes) else value

    async def hset(self, key: str, mapping: Mapping[str, str]) -> None:
        await self._call(self.client.hset, key, mapping=cast("Mapping[Any, Any]", mapping))

    async def hgetall_many(self, keys: Sequence[str]) -> list[dict[str, str]]:
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        rows = await self._call(pipe.execute)
        return [{k.decode(): v.decode() for k, v in row.items()} for row in rows]

    async def update_positions(
        self, states: Sequence[tuple[str, Mapping[str, str], float, float]]
    ) -> None:
        """Hash ``eriop:resource:<id>`` and the geo set, for (id, fields, lon, lat)."""
        if not states:
            return
        if self._positions is None:
            self._positions = self.client.register_script(_UPDATE_POSITIONS)
        for at in range(0, len(states), _SCRIPT_CHUNK):
            chunk = states[at : at + _SCRIPT_CHUNK]
            # repr: the text the client would have sent for the numbers
            items = [
                [rid, repr(lon), repr(lat), *chain.from_iterable(fields.items())]
                for rid, fields, lon, lat in chunk
            ]
            await self._call(
                self._positions,
                keys=[GEO_RESOURCES, *(resource_key(rid) for rid, _, _, _ in chunk)],
                args=[orjson.dumps(items)],
            )

    async def touch_devices(self, seen: Mapping[str, tuple[str, str]]) -> None:
        """``eriop:device:<id>`` = {last_seen, device_type} for each device."""
        if not seen:
            return
        if self._touch is None:
            self._touch = self.client.register_script(_TOUCH_DEVICES)
        ids = list(seen)
        for at in range(0, len(ids), _SCRIPT_CHUNK):
            chunk = ids[at : at + _SCRIPT_CHUNK]
            await self._call(
                self._touch,
                keys=[device_key(d) for d in chunk],
                args=[field for d in chunk for field in seen[d]],
            )
