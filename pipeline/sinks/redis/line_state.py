"""Line supervision on Redis, for dispatchers' consoles (docs/operations.md).

Names:
  channel ``eriop.supervision`` - one JSON message per change (an account in
    communication failure, or restored);
  hash ``eriop:line:<account>`` - the account's current supervision state:
    ``state`` (``failed`` / ``ok``), ``line``, ``since`` (the last check-in
    before the outage), ``changed_at``, ``receiver``.
redis-py exceptions are translated here into :class:`RedisUnavailable`.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from pipeline import metrics
from pipeline.decoders.alarm.supervision import LineChange
from pipeline.decoders.envelope import iso_utc
from pipeline.errors import RedisUnavailable

CH_SUPERVISION: Final = "eriop.supervision"


def line_key(account: str) -> str:
    return f"eriop:line:{account.upper()}"


class RedisLineState:
    """Writes supervision changes; every call raises RedisUnavailable on failure."""

    def __init__(self, url: str, *, receiver: str) -> None:
        self._url = url
        self._receiver = receiver
        self._client: aioredis.Redis | None = None

    async def start(self) -> None:
        self._client = aioredis.from_url(self._url, socket_timeout=5, socket_connect_timeout=5)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def health(self) -> dict[str, Any]:
        try:
            if self._client is None:
                raise RedisUnavailable("redis client is not started")
            await self._client.ping()
            return {"ok": True}
        except (RedisError, OSError, RedisUnavailable) as exc:
            return {"ok": False, "error": str(exc)[:200]}

    async def __call__(self, change: LineChange) -> None:
        """Set the account's hash, then announce the change on the channel."""
        if self._client is None:
            raise RedisUnavailable("redis client is not started")
        state = "failed" if change.state == "failed" else "ok"
        fields = [
            *("state", state),
            *("line", change.line or ""),
            *("since", iso_utc(change.since)),
            *("changed_at", iso_utc(change.at)),
            *("receiver", self._receiver),
        ]
        message = {**change.as_json(), "at": iso_utc(change.at), "receiver": self._receiver}
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(line_key(change.account), items=fields)
        pipe.publish(CH_SUPERVISION, orjson.dumps(message))
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            metrics.REDIS_PUBLISH.labels(CH_SUPERVISION, "error").inc()
            raise RedisUnavailable(f"redis unavailable: {exc}") from exc
        metrics.REDIS_PUBLISH.labels(CH_SUPERVISION, "ok").inc()
