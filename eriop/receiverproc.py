"""The real ``eriop dc09-receiver`` as a separate process, for the benchmark, the
fault tests and ``eriop dev``: start, readiness, metrics, SIGTERM or SIGKILL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from eriop.dev.stack import free_port
from eriop.workerproc import WorkerProcess


class ReceiverProcess(WorkerProcess):
    """``port`` is the status port; ``dc09_port`` the TCP and UDP port panels use."""

    def __init__(
        self, env: dict[str, str], log_dir: Path, name: str = "dc09", dc09_port: int | None = None
    ) -> None:
        super().__init__(env, log_dir, name)
        self.dc09_port = dc09_port or free_port()
        self.env.pop("ERIOP_METRICS_PORT", None)

    def start(self, *extra: str) -> ReceiverProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "eriop.cli", "dc09-receiver",
                "--port", str(self.dc09_port), "--metrics-port", str(self.port), *extra,
            ],
            env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        return self
