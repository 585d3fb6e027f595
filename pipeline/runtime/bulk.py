"""The telemetry and GPS path in a process of its own.

``eriop worker`` runs the alert path itself and the volume path in child
processes at a lower CPU priority (one per CPU by default, sharing the volume
topics' partitions in one consumer group). Decoding a telemetry flood is CPU work; in one
event loop it would delay every await of an alert's transaction behind it,
and on a busy machine the scheduler now lets the alert path go first. The
child (``python -m pipeline.runtime.bulk``) has its own connections and
consumer group, serves metrics and health on a loopback port that the worker
merges into its own pages, dies with the worker (SIGKILL
included), and is restarted with backoff by the worker if it ever exits.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import sys

from pipeline.clients.postgres import driver_uuid
from pipeline.decoders.telemetry.fields import use_uuid_form
from pipeline.errors import EriopError
from pipeline.runtime import logs
from pipeline.runtime.root import Runtime
from pipeline.runtime.startup import settle_gc
from pipeline.settings import Settings

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent and os.getppid() != parent:
        os._exit(1)  # the worker died before the death signal was armed


def run_bulk(settings: Settings) -> int:
    """The volume path, until SIGTERM or the worker dies."""
    _die_with_parent(settings.bulk.parent_pid)
    use_uuid_form(driver_uuid)
    if settings.bulk.nice:
        os.nice(settings.bulk.nice)
    # Ctrl-C reaches the whole process group; the worker decides when this stops
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return asyncio.run(_serve(settings))


async def _serve(settings: Settings) -> int:
    def say(msg: str) -> None:
        print(f"eriop worker (bulk): {msg}", file=sys.stderr, flush=True)

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    runtime = Runtime(settings, role="bulk", status=("127.0.0.1", settings.bulk.port))
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
        return exc.exit_code
    await runtime.start()
    settle_gc()
    say(f"consuming telemetry and GPS (pid {os.getpid()})")
    try:
        await stopped
    finally:
        await runtime.close(settings.shutdown_timeout_s)
    return 0


def main() -> int:
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    return run_bulk(settings)


if __name__ == "__main__":
    sys.exit(main())
