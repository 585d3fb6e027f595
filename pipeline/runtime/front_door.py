"""A front-door process (``eriop mqtt-bridge``, ``eriop cap-poller``): its status
server, its signals and its bounded shutdown, around a service that has
``start(stop)``, ``run(stop)``, ``health()`` and ``close()``."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any, Protocol

from prometheus_client import generate_latest

from pipeline import metrics
from pipeline.runtime.http import StatusServer

log = logging.getLogger(__name__)


class FrontDoor(Protocol):
    async def start(self, stop: asyncio.Event) -> bool: ...

    async def run(self, stop: asyncio.Event) -> None: ...

    async def health(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...


async def _metrics_page() -> bytes:
    return generate_latest(metrics.REGISTRY)


async def serve_front_door(
    service: FrontDoor,
    *,
    port: int,
    host: str = "0.0.0.0",  # noqa: S104 - scraped by Prometheus from other hosts
    shutdown_timeout_s: float = 15.0,
    stop: asyncio.Event | None = None,
) -> int:
    """Run ``service`` until SIGTERM/SIGINT (or ``stop``); 0 on a clean stop."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = StatusServer(host, port, metrics=_metrics_page, health=service.health)
    await server.start()
    log.info("status on %s:%d (/metrics, /livez, /readyz)", host, server.port)
    try:
        if await service.start(stop):
            await service.run(stop)
    finally:
        try:
            await asyncio.wait_for(service.close(), shutdown_timeout_s)
        except TimeoutError:
            log.warning("shutdown took longer than %.0f s; leaving", shutdown_timeout_s)
        await server.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return 0
