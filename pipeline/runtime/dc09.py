"""``eriop dc09-receiver`` composed: the receiver service and its line supervision
(:class:`LineSupervisor` with the database, the Redis announcements and the
receiver's reloadable accounts).

Supervision is off when ``alarm.checkin_interval_s`` is 0. PostgreSQL or Redis
being away never holds up an answer to a panel: check-ins are only noted in
memory, and the supervisor retries in the background.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from pipeline.clients.postgres import Database
from pipeline.settings import AlarmAccount, Settings
from pipeline.sinks.redis.line_state import RedisLineState
from pipeline.sources.dc09.publisher import KafkaPublisher
from pipeline.sources.dc09.service import DC09Service
from pipeline.sources.dc09.supervision import LineSupervisor


class Supervision:
    """``check_in``/``start``/``close``/``health`` over the supervisor and its Redis side."""

    def __init__(
        self,
        settings: Settings,
        *,
        publish: Callable[[bytes | None, bytes], Awaitable[None]],
        accounts: Callable[[], Mapping[str, AlarmAccount]],
    ) -> None:
        receiver = settings.receiver.receiver_id
        self._redis = RedisLineState(settings.redis_url.get_secret_value(), receiver=receiver)
        self._supervisor = LineSupervisor(
            settings.alarm,
            database=Database(settings.database_url.get_secret_value()),
            publish=publish,
            receiver=receiver,
            notify=self._redis,
            accounts=accounts,
        )

    def check_in(self, account: str, line: str | None, at: datetime) -> None:
        self._supervisor.check_in(account, line, at)

    async def start(self) -> None:
        await self._redis.start()
        await self._supervisor.start()

    async def close(self) -> None:
        await self._supervisor.close()
        await self._redis.close()

    async def health(self) -> dict[str, Any]:
        return {**await self._supervisor.health(), "redis": await self._redis.health()}


def build_receiver(settings: Settings) -> DC09Service:
    """The receiver with supervision (unless turned off); call inside the event loop."""
    if settings.alarm.checkin_interval_s <= 0:
        return DC09Service(settings)
    publisher = KafkaPublisher(settings)
    service = DC09Service(settings, publisher=publisher)
    service.attach(Supervision(settings, publish=publisher.publish, accounts=service.keys.accounts))
    return service
