"""The one HTTP server every ERIOP process serves: metrics and health.

- ``/metrics``: Prometheus text exposition.
- ``/livez``: 200 while the process and its event loop answer; nothing else
  is checked, so an orchestrator restarts only a process that is really stuck.
- ``/readyz``: 200 when the process can do its work now (dependencies
  reachable, partitions assigned, not paused), else 503 with the report.
- ``/health``: the full report (dependencies, processes, consumer groups): 200
  while the process runs with its required dependencies reachable, else 503.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from pipeline.errors import ConfigError

MetricsPage = Callable[[], Awaitable[bytes]]
HealthReport = Callable[[], Awaitable[dict[str, Any]]]

#: the exposition format's type without its charset parameter, which aiohttp sets
#: apart (UTF-8 is the default of text/plain for Prometheus)
_CONTENT_TYPE = CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class StatusServer:
    """Serves :data:`MetricsPage` and :data:`HealthReport` on ``host:port``.

    The health report is a dict with at least ``ok`` (bool, for ``/health``);
    ``ready`` (bool, for ``/readyz``) defaults to ``ok``.
    """

    def __init__(self, host: str, port: int, *, metrics: MetricsPage, health: HealthReport) -> None:
        self.host = host
        self.port = port
        self._metrics = metrics
        self._health = health
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics_page)
        app.router.add_get("/livez", self._livez)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/health", self._health_page)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(
                f"cannot serve metrics and health on {self.host}:{self.port} ({exc.strerror}): "
                "is another process using the port? choose another metrics port"
            ) from None
        self._runner = runner
        if self.port == 0 and runner.addresses:
            self.port = int(runner.addresses[0][1])

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics_page(self, _: web.Request) -> web.Response:
        return web.Response(body=await self._metrics(), headers={"Content-Type": _CONTENT_TYPE})

    async def _livez(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def _health_page(self, _: web.Request) -> web.Response:
        report = await self._health()
        return web.json_response(report, status=200 if report.get("ok") else 503)

    async def _readyz(self, _: web.Request) -> web.Response:
        report = await self._health()
        ready = bool(report.get("ready", report.get("ok")))
        return web.json_response(report, status=200 if ready else 503)
