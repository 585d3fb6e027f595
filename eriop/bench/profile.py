"""``eriop bench --profile``: where the worker's telemetry/GPS processes spend
their CPU while they drain a backlog.

py-spy samples each bulk process of the worker (without pausing it) from the
first commit to the last; the raw stacks are kept, and a summary lists the
functions by their own samples and by the samples of everything they called.
py-spy leaves out idle threads, so a sample is CPU spent.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import psutil

BULK_MODULE = "pipeline.runtime.bulk"
RATE_HZ = 200


def bulk_children(worker_pid: int) -> list[int]:
    """The pids of a worker's telemetry/GPS processes."""
    try:
        children = psutil.Process(worker_pid).children(recursive=True)
    except psutil.Error:
        return []
    out = []
    for child in children:
        try:
            if BULK_MODULE in " ".join(child.cmdline()):
                out.append(child.pid)
        except psutil.Error:
            continue
    return out


def py_spy() -> str:
    """The py-spy executable (a dev dependency), or a clear error."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise RuntimeError("py-spy is not installed: pip install -e '.[dev]'")
    return found


def record_argv(exe: str, pid: int, path: Path, *, native: bool) -> list[str]:
    """py-spy's command line for one process: without pausing it, unless native
    frames are wanted (those can only be read from a paused process)."""
    mode = "--native" if native else "--nonblocking"
    return [exe, "record", "--pid", str(pid), "--rate", str(RATE_HZ),
            mode, "--format", "raw", "--output", str(path)]  # fmt: skip


class Sampler:
    """py-spy on a set of processes, writing raw stacks into ``out_dir``."""

    def __init__(self, out_dir: Path, name: str, *, native: bool = False) -> None:
        self._dir = out_dir
        self._name = name
        self._native = native
        self._procs: list[subprocess.Popen[bytes]] = []
        self.files: list[Path] = []

    def attach(self, pids: list[int]) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        exe = py_spy()
        for i, pid in enumerate(pids):
            path = self._dir / f"{self._name}-{i}.raw"
            self.files.append(path)
            argv = record_argv(exe, pid, path, native=self._native)
            self._procs.append(
                subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )

    def finish(self) -> None:
        """Stop sampling; py-spy writes its file on SIGINT."""
        for p in self._procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in self._procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        self._procs.clear()


def _frame_name(frame: str) -> str:
    """``fn (path/to/module.py:12)`` -> ``fn (module.py)``; lines are noise here."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = path.split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{name} ({short})"


def summarize(files: list[Path], top: int = 30) -> str:
    """Own and inclusive shares of the samples in py-spy raw files, as text."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    present = [p for p in files if p.exists()]
    for path in present:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            n = int(count_text)
            frames = [_frame_name(f) for f in stack.split(";") if f]
            if not frames:
                continue
            total += n
            own[frames[-1]] += n
            for name in set(frames):
                inclusive[name] += n
    if total == 0:
        return "no samples\n"
    lines = [f"{total} samples at {RATE_HZ} Hz over {len(present)} process(es)", ""]
    lines += ["own %  function", "-----  --------"]
    lines += [f"{n / total * 100:5.1f}  {name}" for name, n in own.most_common(top)]
    lines += ["", "incl % function", "-----  --------"]
    lines += [f"{n / total * 100:5.1f}  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines) + "\n"
