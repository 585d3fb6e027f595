"""``eriop worker``: connect, then run the alert agent and the volume path
until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal

from agents.alerts import alert_agent
from pipeline.runtime.root import Runtime
from pipeline.runtime.serve import serve
from pipeline.settings import Settings


def run(settings: Settings, *, wait_s: float | None = None) -> int:
    async def main() -> int:
        # aiokafka clients bind to the running loop when they are created
        runtime = Runtime(
            settings,
            role="alerts" if settings.bulk.process else "all",
            status=(settings.metrics_host, settings.metrics_port),
        )
        return await serve(
            runtime,
            name="eriop worker",
            wait_s=wait_s,
            ready=lambda: (
                f"consuming (kafka {settings.kafka_bootstrap}); metrics and health on "
                f":{settings.metrics_port}/metrics and /health"
            ),
            components=[alert_agent(runtime)],
            stop_on=(signal.SIGTERM, signal.SIGINT),
        )

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 130
