"""The real ``eriop worker`` as a separate process, for the benchmark and the tests:
start, health, metrics, SIGTERM or SIGKILL, and its log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from eriop.dev.stack import free_port
from pipeline.errors import EriopError
from pipeline.runtime.metrics_merge import metric_sum


class WorkerFailed(EriopError):
    """The worker exited, or did not become healthy in time; the message has its log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.args = (reason,)  # the whole log, not only the first characters of the reason


class WorkerProcess:
    def __init__(self, env: dict[str, str], log_dir: Path, name: str = "worker") -> None:
        self.port = free_port()
        self.env = {**os.environ, **env, "ERIOP_METRICS_PORT": str(self.port)}
        self.log_path = log_dir / f"{name}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> WorkerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "eriop.cli", "worker", *extra],
            env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        return self

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return int(r.status), r.read()
        except urllib.error.HTTPError as e:
            return int(e.code), e.read()

    def wait_healthy(self, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise WorkerFailed(f"worker exited {self.proc.returncode}:\n{self.log()}")
            try:
                status, body = self.get("/health")
                if status == 200:
                    report: dict[str, Any] = json.loads(body)
                    return report
            except OSError:
                pass
            time.sleep(0.3)
        raise WorkerFailed(f"worker not healthy after {timeout}s:\n{self.log()}")

    def metric(self, name: str, **labels: str) -> float:
        _, body = self.get("/metrics")
        return metric_sum(body.decode(), name, **labels)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, timeout: float = 60) -> tuple[int, float]:
        """SIGTERM; returns the exit code and how long the shutdown took."""
        assert self.proc is not None
        began = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        return int(code), time.monotonic() - began

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def worker_env(bootstrap: str, dsn: str, redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "ERIOP_KAFKA_BOOTSTRAP": bootstrap,
        "ERIOP_DATABASE_URL": dsn,
        "ERIOP_REDIS_URL": redis_url,
        "ERIOP_EMBEDDED_BROKER": "true",
        "ERIOP_KAFKA__IDEMPOTENCE": "false",
        **extra,
    }
