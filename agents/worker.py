"""``eriop worker``: connect, then run the Faust worker until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading

import faust

from agents.app import create_app
from pipeline.errors import EriopError
from pipeline.runtime.root import Runtime
from pipeline.runtime.startup import settle_gc
from pipeline.settings import Settings

log = logging.getLogger(__name__)


class _BoundedWorker(faust.Worker):
    """A Faust worker whose shutdown cannot outlive its budget."""

    shutdown_budget_s: float = 25.0

    def _arm(self) -> None:
        budget = self.shutdown_budget_s

        def expire() -> None:
            sys.stderr.write(f"eriop worker: shutdown exceeded {budget:.0f}s, exiting\n")
            os._exit(3)

        timer = threading.Timer(budget, expire)
        timer.daemon = True
        timer.start()

    def _on_sigterm(self) -> None:
        self._arm()
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        self._arm()
        super()._on_sigint()


def run(settings: Settings, *, wait_s: float | None = None) -> int:
    def say(msg: str) -> None:
        print(f"eriop worker: {msg}", file=sys.stderr, flush=True)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    async def build() -> Runtime:
        # aiokafka clients bind to the running loop when they are created
        return Runtime(
            settings,
            role="alerts" if settings.bulk.process else "all",
            status=(settings.metrics_host, settings.metrics_port),
        )

    runtime = loop.run_until_complete(build())
    try:
        loop.run_until_complete(runtime.connect(deadline_s=wait_s, say=say))
    except EriopError as exc:
        say(f"cannot start: {exc.reason}")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    say(
        f"connected (kafka {settings.kafka_bootstrap}); metrics and health on "
        f":{settings.metrics_port}/metrics and /health"
    )
    app = create_app(settings, runtime)
    settle_gc()
    # logging is set up once for every process (pipeline.runtime.logs), not by Faust;
    # without its spinner, Faust never lowers the root logger to DEBUG either
    worker = _BoundedWorker(
        app,
        loglevel=settings.log_level,
        loop=loop,
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
    )
    worker.spinner = None
    worker.shutdown_budget_s = settings.shutdown_timeout_s + 10
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
