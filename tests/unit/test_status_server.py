"""The one status server: liveness apart from readiness, a taken port explained."""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
import pytest

from pipeline.errors import EXIT_CONFIG, ConfigError
from pipeline.runtime.http import StatusServer


async def _metrics() -> bytes:
    return b"eriop_worker_up 1.0\n"


async def test_liveness_does_not_depend_on_readiness() -> None:
    report: dict[str, Any] = {"ok": True, "ready": False}

    async def health() -> dict[str, Any]:
        return report

    server = StatusServer("127.0.0.1", 0, metrics=_metrics, health=health)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{server.port}"

            async def status(path: str) -> int:
                async with http.get(base + path) as resp:
                    return resp.status

            assert (await status("/livez"), await status("/readyz")) == (200, 503)
            assert await status("/health") == 200
            report["ok"] = False  # a dependency down: not healthy, still alive
            assert (await status("/livez"), await status("/health")) == (200, 503)
            async with http.get(base + "/metrics") as resp:
                assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                assert await resp.read() == b"eriop_worker_up 1.0\n"
    finally:
        await server.close()


async def test_a_taken_port_is_a_configuration_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def health() -> dict[str, Any]:
            return {"ok": True}

        server = StatusServer("127.0.0.1", port, metrics=_metrics, health=health)
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}") as err:
            await server.start()
        assert err.value.exit_code == EXIT_CONFIG
