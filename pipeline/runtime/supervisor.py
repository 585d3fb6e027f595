"""The worker's handles on its telemetry/GPS child processes.

Each child is started as ``python -m pipeline.runtime.bulk`` with the worker's
environment plus its loopback status port and the worker's pid; it is
restarted with backoff if it exits, and asked for its metrics and health.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import re
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import aiohttp

from pipeline import metrics
from pipeline.retry import RESTART
from pipeline.runtime.http import free_port
from pipeline.runtime.metrics_merge import counters_only, merge_exposition

log = logging.getLogger(__name__)

#: a child that ran this long before it exited is restarted without delay growth
_STABLE_S = 60.0


def claim_member_slot(group: str) -> tuple[int, IO[bytes]]:
    """The lowest slot number no other running worker of ``group`` on this host holds.

    The lock lives as long as the returned file stays open (the process, SIGKILL
    included), so a restarted worker takes the same slot, and with it the same
    static group membership, while workers running side by side never share one.
    """
    folder = Path(tempfile.gettempdir()) / "eriop-members" / re.sub(r"[^\w.-]", "_", group)
    folder.mkdir(parents=True, exist_ok=True)
    slot = 0
    while True:
        handle = (folder / f"{slot}.lock").open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            slot += 1
            continue
        return slot, handle


class BulkChild:
    """The worker's handle on its bulk process: start, supervise, ask, stop."""

    def __init__(
        self, index: int = 0, *, log_level: str = "info", member: str = "", priority_fd: int = -1
    ) -> None:
        self.index = index
        self._log_level = log_level
        self._priority_fd = priority_fd
        # static group membership: the same name after a restart, unique among the
        # workers that run at once (``<host>-<slot>-bulk-<n>``, claim_member_slot)
        self._instance_id = f"{member or socket.gethostname()}-bulk-{index}"
        self._proc: asyncio.subprocess.Process | None = None
        self._port = 0
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._stopping = False
        self._last_page = ""
        #: counters of the processes this handle ran before the current one
        self._carried = ""

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3))
        await self._spawn()
        self._task = asyncio.create_task(self._supervise(), name="bulk-process")

    async def _spawn(self) -> None:
        if self._last_page:
            # the process that ended: its counters go on counting in the merged page
            self._carried = counters_only(
                merge_exposition([self._last_page, self._carried]).decode()
            )
            self._last_page = ""
        self._port = free_port()
        env = {
            **os.environ,
            "ERIOP_BULK__PORT": str(self._port),
            "ERIOP_BULK__PARENT_PID": str(os.getpid()),
            "ERIOP_LOG_LEVEL": self._log_level,
            "ERIOP_BULK__INSTANCE_ID": self._instance_id,
            "ERIOP_BULK__PRIORITY_FD": str(self._priority_fd),
        }
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pipeline.runtime.bulk", env=env,
            pass_fds=(self._priority_fd,) if self._priority_fd >= 0 else (),
        )  # fmt: skip
        log.info("bulk process %d started (pid %d)", self.index, self._proc.pid)

    async def _supervise(self) -> None:
        backoff = RESTART.backoff()
        while True:
            assert self._proc is not None
            began = time.monotonic()
            code = await self._proc.wait()
            if self._stopping:
                return
            if time.monotonic() - began > _STABLE_S:
                backoff.reset()
            metrics.BULK_RESTARTS.inc()
            delay = backoff.next_delay()
            log.error(
                "bulk process %d exited with %s; restarting it in %.0fs", self.index, code, delay
            )
            await asyncio.sleep(delay)
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
        return {
            "ok": bool(report.get("ok")),
            "ready": bool(report.get("ready")),
            "pid": self.pid,
            "status": report.get("status"),
            "groups": report.get("groups", {}),
        }

    async def metrics_page(self) -> str:
        """The child's metrics page, plus the counters of the processes it replaced.

        While the child is not answering (busy, or being restarted), its last
        page stands in for it, so merged counters never go down.
        """
        if self._running():
            try:
                status, body = await self._get("/metrics")
            except (aiohttp.ClientError, TimeoutError):
                status, body = 0, b""
            if status == 200:
                self._last_page = body.decode()
        if not self._carried:
            return self._last_page
        return merge_exposition([self._last_page, self._carried]).decode()

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
