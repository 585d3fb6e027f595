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

from pipeline import compiled
from pipeline.clients.postgres import driver_uuid
from pipeline.decoders.telemetry.fields import use_uuid_form
from pipeline.runtime import logs
from pipeline.runtime.root import Runtime
from pipeline.runtime.serve import serve
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
    runtime = Runtime(settings, role="bulk", status=("127.0.0.1", settings.bulk.port))
    return await serve(
        runtime,
        name="eriop worker (bulk)",
        wait_s=None,
        ready=lambda: (
            f"consuming telemetry and GPS (pid {os.getpid()}; volume path {compiled.describe()})"
        ),
    )


def main() -> int:
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    return run_bulk(settings)


if __name__ == "__main__":
    sys.exit(main())
