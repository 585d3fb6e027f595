"""Running one ERIOP process from start to stop.

The worker and each of its bulk processes go the same way: reach the
dependencies (giving up quietly when told to stop first), start, run until a
stop signal, then close within the shutdown budget. A shutdown that outlives
its budget ends the process (exit code 3) instead of hanging a deploy.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from pipeline.errors import EriopError
from pipeline.runtime.root import Runtime
from pipeline.runtime.startup import settle_gc

#: the exit code of a process whose shutdown outlived its budget
EXIT_SHUTDOWN_EXPIRED = 3


class Component(Protocol):
    """Something started after the runtime and stopped before it (a consumer)."""

    async def start(self) -> None: ...
    async def stop(self, timeout: float = ...) -> None: ...


def _arm(budget_s: float, name: str) -> None:
    def expire() -> None:
        sys.stderr.write(f"{name}: shutdown exceeded {budget_s:.0f}s, exiting\n")
        os._exit(EXIT_SHUTDOWN_EXPIRED)

    timer = threading.Timer(budget_s, expire)
    timer.daemon = True
    timer.start()


async def serve(
    runtime: Runtime,
    *,
    name: str,
    wait_s: float | None,
    ready: Callable[[], str],
    components: Sequence[Component] = (),
    stop_on: Sequence[signal.Signals] = (signal.SIGTERM,),
) -> int:
    """Connect, start ``runtime`` then ``components``, and run until a signal in
    ``stop_on``; returns the process's exit code. ``ready`` says what runs."""

    def say(msg: str) -> None:
        print(f"{name}: {msg}", file=sys.stderr, flush=True)

    settings = runtime.settings
    stop = asyncio.Event()

    def stopping() -> None:
        if not stop.is_set():
            _arm(settings.shutdown_timeout_s + 10, name)
            stop.set()

    loop = asyncio.get_running_loop()
    for sig in stop_on:
        loop.add_signal_handler(sig, stopping)
    connecting = asyncio.create_task(runtime.connect(deadline_s=wait_s, say=say))
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({connecting, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not connecting.done():
        connecting.cancel()
        with contextlib.suppress(asyncio.CancelledError, EriopError):
            await connecting
        return 0
    try:
        connecting.result()
    except EriopError as exc:
        say(f"cannot start: {exc.reason}")
        return exc.exit_code
    try:
        await runtime.start()
        for c in components:
            await c.start()
        settle_gc()
        say(ready())
        await stopped
    finally:
        # the components first: they feed the runtime's flows
        budget = max(settings.shutdown_timeout_s - 2, 1)
        for c in components:
            await c.stop(budget / 2)
        await runtime.close(settings.shutdown_timeout_s)
    return 0
