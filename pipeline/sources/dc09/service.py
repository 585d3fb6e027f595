"""``eriop dc09-receiver`` as a front door: keys, Kafka, line supervision and
the listeners, with the ``start``/``run``/``health``/``close`` shape that
:func:`pipeline.runtime.front_door.serve_front_door` runs.

The accounts file is read again on SIGHUP and whenever its modification time
changes (checked every ``receiver.accounts_reload_s``). Line supervision is
handed in (:func:`pipeline.runtime.dc09.build_receiver` composes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from typing import Any, Protocol

from pipeline.settings import Settings
from pipeline.sources.dc09.keys import KeyRing
from pipeline.sources.dc09.publisher import KafkaPublisher
from pipeline.sources.dc09.receiver import Publisher, Receiver, Supervisor
from pipeline.sources.dc09.server import DC09Server

log = logging.getLogger(__name__)


class ManagedSupervisor(Supervisor, Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def health(self) -> dict[str, Any]: ...


class DC09Service:
    def __init__(
        self,
        settings: Settings,
        *,
        supervisor: ManagedSupervisor | None = None,
        publisher: KafkaPublisher | None = None,
    ) -> None:
        self.settings = settings
        rs = settings.receiver
        self.keys = KeyRing(settings.alarm.env_accounts, settings.alarm.accounts_file)
        self.publisher = publisher or KafkaPublisher(settings)
        self.supervisor = supervisor
        publish: Publisher = self.publisher
        self.receiver = Receiver(rs, keys=self.keys, publisher=publish, supervisor=supervisor)
        self.server = DC09Server(rs, self.receiver)

    def attach(self, supervisor: ManagedSupervisor) -> None:
        """Line supervision built around this service's publisher and keys (before start)."""
        self.supervisor = supervisor
        self.receiver.supervisor = supervisor

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self, stop: asyncio.Event) -> bool:
        if self.supervisor is not None:
            await self.supervisor.start()
        self.publisher.start()
        await self.server.start()
        # what start-up allocated lives as long as the process: keep it out of the
        # collector's full passes, which would otherwise pause ACKs
        gc.collect()
        gc.freeze()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.keys.reload)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        every = self.settings.receiver.accounts_reload_s
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            self.keys.reload_if_changed()

    async def health(self) -> dict[str, Any]:
        kafka = self.publisher.ready
        listening = self.server.listening
        report: dict[str, Any] = {
            # answering panels needs Kafka only; supervision catches up when it can
            "ok": kafka and listening,
            "kafka": {"ok": kafka},
            "listener": {"ok": listening, "port": self.server.port},
            "accounts_with_key": len(self.keys),
        }
        if self.supervisor is not None:
            report["supervision"] = await self.supervisor.health()
        return report

    async def close(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        await self.server.close(self.settings.receiver.ack_timeout_s)
        await self.publisher.close()
        if self.supervisor is not None:
            await self.supervisor.close()
