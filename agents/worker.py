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
from pipeline.runtime.root import Runtime, settle_gc
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

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        # Faust's start-up spinner lowers the root logger to DEBUG so it can spin
        # on every record; every aiokafka debug line would then be built and
        # dropped on each fetch, costing the alert path CPU all day.
        self.spinner = None
        super().on_setup_root_logger(logger, level)

    def _on_sigterm(self) -> None:
        self._arm()
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        self._arm()
        super()._on_sigint()


def run(settings: Settings, *, wait_s: float | None = None, loglevel: str = "info") -> int:
    def say(msg: str) -> None:
        print(f"eriop worker: {msg}", file=sys.stderr, flush=True)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    async def build() -> Runtime:
        # aiokafka clients bind to the running loop when they are created
        return Runtime(settings, role="alerts" if settings.bulk.process else "all")

    runtime = loop.run_until_complete(build())
    try:
        loop.run_until_complete(runtime.connect(deadline_s=wait_s, say=say))
    except EriopError as exc:
        say(f"cannot start: {exc.reason}")
        return 2
    except KeyboardInterrupt:
        return 130
    say(
        f"connected (kafka {settings.kafka_bootstrap}); metrics and health on "
        f":{settings.metrics_port}/metrics and /health"
    )
    app = create_app(settings, runtime)
    settle_gc()
    worker = _BoundedWorker(app, loglevel=loglevel, loop=loop, quiet=True, redirect_stdouts=False)
    worker.shutdown_budget_s = settings.shutdown_timeout_s + 10
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
