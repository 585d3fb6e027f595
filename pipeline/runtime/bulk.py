"""The telemetry and GPS path in a process of its own.

``eriop worker`` runs the alert path itself and the volume path in child
processes at a lower CPU priority (one per CPU by default, sharing the volume
topics' partitions in one consumer group). Decoding a telemetry flood is CPU work; in one
event loop it would delay every await of an alert's transaction behind it,
and on a busy machine the scheduler now lets the alert path go first. The
child is the same program (``eriop worker --role bulk``): it has its own
connections and consumer group, serves metrics and health on a loopback port
that the worker merges into its own pages, dies with the worker (SIGKILL
included), and is restarted with backoff by the worker if it ever exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
import time
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from eriop.dev.stack import free_port
from pipeline import metrics
from pipeline.errors import EriopError
from pipeline.settings import Settings

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_RESTART_MAX_S = 30.0
#: a child that ran this long before it exited is restarted without delay growth
_STABLE_S = 60.0


class BulkChild:
    """The worker's handle on its bulk process: start, supervise, ask, stop."""

    def __init__(self, index: int = 0) -> None:
        self.index = index
        self._proc: asyncio.subprocess.Process | None = None
        self._port = 0
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stopping = False

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3))
        await self._spawn()
        self._task = asyncio.create_task(self._supervise(), name="bulk-process")

    async def _spawn(self) -> None:
        self._port = free_port()
        env = {
            **os.environ,
            "ERIOP_BULK__PORT": str(self._port),
            "ERIOP_BULK__PARENT_PID": str(os.getpid()),
        }
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "eriop.cli", "worker", "--role", "bulk", env=env
        )
        log.info("bulk process %d started (pid %d)", self.index, self._proc.pid)

    async def _supervise(self) -> None:
        delay = 1.0
        while True:
            assert self._proc is not None
            began = time.monotonic()
            code = await self._proc.wait()
            if self._stopping:
                return
            if time.monotonic() - began > _STABLE_S:
                delay = 1.0
            metrics.BULK_RESTARTS.inc()
            log.error(
                "bulk process %d exited with %s; restarting it in %.0fs", self.index, code, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RESTART_MAX_S)
            if self._stopping:
                return
            await self._spawn()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def _get(self, path: str) -> tuple[int, bytes]:
        assert self._session is not None
        async with self._session.get(f"http://127.0.0.1:{self._port}{path}") as resp:
            return resp.status, await resp.read()

    async def health(self) -> dict[str, Any]:
        if not self._running():
            return {"ok": False, "error": "bulk process not running"}
        try:
            _, body = await self._get("/health")
            report: dict[str, Any] = json.loads(body)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return {"ok": False, "error": f"bulk process not answering: {exc!r}"[:200]}
        return {"ok": bool(report.get("ok")), "pid": self.pid, "status": report.get("status")}

    async def metrics_page(self) -> str:
        """The child's metrics page; empty while it is not answering."""
        if not self._running():
            return ""
        try:
            status, body = await self._get("/metrics")
        except (aiohttp.ClientError, TimeoutError):
            return ""
        return body.decode() if status == 200 else ""

    async def stop(self, timeout: float) -> None:
        """SIGTERM (the child flushes its batch and leaves its group), then SIGKILL."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._running():
            assert self._proc is not None
            self._proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._proc.wait(), timeout)
            except TimeoutError:
                log.warning(
                    "bulk process %d did not stop in %.0fs; killing it", self.index, timeout
                )
                self._proc.kill()
                await self._proc.wait()
        if self._session is not None:
            await self._session.close()


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent and os.getppid() != parent:
        os._exit(1)  # the worker died before the death signal was armed


def run_bulk(settings: Settings) -> int:
    """``eriop worker --role bulk``: the volume path, until SIGTERM or the worker dies."""
    _die_with_parent(settings.bulk.parent_pid)
    if settings.bulk.nice:
        os.nice(settings.bulk.nice)
    # Ctrl-C reaches the whole process group; the worker decides when this stops
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> int:
    from pipeline.runtime.root import Runtime, settle_gc

    def say(msg: str) -> None:
        print(f"eriop worker (bulk): {msg}", file=sys.stderr, flush=True)

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    runtime = Runtime(settings, role="bulk")
    connecting = asyncio.create_task(runtime.connect(deadline_s=None, say=say))
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({connecting, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not connecting.done():
        connecting.cancel()
        return 0
    try:
        connecting.result()
    except EriopError as exc:
        say(f"cannot start: {exc.reason}")
        return 2
    await runtime.start()
    settle_gc()

    async def metrics_page(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.REGISTRY),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    async def health_page(_: web.Request) -> web.Response:
        report = await runtime.health()
        return web.json_response(report, status=200 if report["ok"] else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics_page)
    app.router.add_get("/health", health_page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.bulk.port).start()
    say(f"consuming telemetry and GPS (pid {os.getpid()})")
    try:
        await stopped
    finally:
        await runtime.close(settings.shutdown_timeout_s)
        await runner.cleanup()
    return 0
