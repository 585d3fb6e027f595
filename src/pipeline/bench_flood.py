"""A telemetry flood for ``eriop bench``, in a process of its own.

The flood runs beside the alert latency measurement; in its own process it
does not delay the benchmark's Redis subscriber, which would inflate the
latencies it reports. It builds its messages first, says ``ready``, produces
them at the requested rate, and prints what it achieved as one JSON line.

    python -m pipeline.bench_flood BOOTSTRAP RATE COUNT POINTS PARTITIONS PREFIX
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta

from pipeline.bench_load import produce_paced, telemetry


def main(argv: list[str]) -> int:
    bootstrap, rate, count, points, partitions, prefix = argv
    n = int(count)
    msgs = telemetry(
        n,
        int(points),
        # spread over the past, so no point is in the future when it is decoded
        start=datetime.now(UTC) - timedelta(milliseconds=n + 120_000),
        partitions=int(partitions),
        prefix=prefix,
    )
    print("ready", flush=True)
    sent, seconds = asyncio.run(produce_paced(bootstrap, msgs, float(rate)))
    print(json.dumps({"sent": sent, "seconds": seconds}), flush=True)
    return 0


class Flood:
    """The parent's handle on a flood process."""

    def __init__(
        self, bootstrap: str, rate: float, count: int, points: int, partitions: int, prefix: str
    ) -> None:
        self._args = [bootstrap, f"{rate:.1f}", str(count), str(points), str(partitions), prefix]
        self._proc: asyncio.subprocess.Process | None = None

    async def _line(self, timeout: float) -> str:
        assert self._proc is not None
        assert self._proc.stdout is not None
        raw = await asyncio.wait_for(self._proc.stdout.readline(), timeout)
        return raw.decode().strip()

    async def start(self, timeout: float = 120.0) -> None:
        """Start it and wait until its messages are built and it begins producing."""
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pipeline.bench_flood", *self._args,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        line = await self._line(timeout)
        if line != "ready":
            raise RuntimeError(f"telemetry flood failed to start: {line!r}")

    async def result(self, timeout: float = 300.0) -> dict[str, float]:
        """Wait for the flood to finish; how many it sent and in how many seconds."""
        assert self._proc is not None
        data: dict[str, float] = json.loads(await self._line(timeout))
        await asyncio.wait_for(self._proc.wait(), 30)
        return data

    async def kill(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()
            await self._proc.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
