"""``eriop bench --smoke`` runs end to end and its numbers are sane.

Sanity only: rates positive, ratios between 0 and 2, percentiles ordered,
every alert received, results written. Never whether a number beats a target:
that depends on the machine, and benchmarks are not tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from eriop.bench.report import broker_table
from eriop.bench.scenarios import Env
from eriop.bench.stress import broker_flow
from eriop.dev import stack as devstack
from pipeline.settings import Settings
from tests.conftest import PG_ADMIN, dsn_for

pytestmark = pytest.mark.integration


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and value > 0


def test_smoke_mode_writes_sane_results(tmp_path: Path, redis_url: str) -> None:
    devstack.ensure_postgres(PG_ADMIN)
    output = tmp_path / "results" / "latest.json"
    env = {
        **os.environ,
        "ERIOP_DATABASE_URL": dsn_for("postgres"),
        "ERIOP_REDIS_URL": redis_url,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "eriop.cli", "bench", "--smoke", "--redis-db", "13",
         "--output", str(output)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
            proc.wait()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-4000:]

    r = json.loads(output.read_text("utf-8"))
    md = output.with_suffix(".md").read_text("utf-8")
    assert md.startswith("Command: `eriop bench --smoke")
    assert r["mode"] == "smoke"
    assert r["sanity_problems"] == []
    for stream in ("telemetry", "gps"):
        s = r[stream]
        assert _positive(s["e2e_rows_per_s"]), s
        assert _positive(s["copy_rows_per_s"]), s
        assert 0 < s["ratio"] < 2, s
        # what bounds the rate: every part's share of the CPU, and the worker's cost per row
        assert _positive(s["cpu_cores"]["worker"]), s
        assert _positive(s["cpu_cores"]["postgres"]), s
        assert _positive(s["cpu_us_per_row"]["worker"]), s
        # one worker core against one database core
        ratio = s["cpu_us_per_row"]["worker"] / s["cpu_us_per_row"]["postgres"]
        assert s["worker_over_postgres"] == pytest.approx(ratio, abs=0.01), s
        # and what PostgreSQL spends on the bare rows, for the pipeline's share of the rest
        assert _positive(s["copy_postgres_us_per_row"]), s
    for phase in ("alone", "flood"):
        a = r["alerts"][phase]
        assert a["received"] == a["sent"] > 0, a
        assert 0 < a["p50_ms"] <= a["p95_ms"] <= a["p99_ms"] <= a["max_ms"], a
    runs = r["alerts"]["flood_runs"]
    assert len(runs) == r["plan"]["flood_runs"] >= 1
    # "flood" stands for the worst run; every run is reported with its percentiles
    assert r["alerts"]["flood"]["p99_ms"] == max(run["p99_ms"] for run in runs)
    for run in runs:
        assert run["received"] == run["sent"] > 0, run
        assert _positive(run["cpu_cores"]["broker"]), run
        assert _positive(run["telemetry_committed_msgs_per_s"]), run
        assert run["bulk_yield_share"] >= 0, run
        assert f"flood run {runs.index(run) + 1} | {run['p50_ms']:.1f} /" in md
    assert _positive(r["overload"]["worker_peak_rss_mb"])
    assert _positive(r["overload"]["bulk_committed_per_s"])
    assert _positive(r["scaling"]["e2e_rows_per_s"])
    assert sum(r["scaling"]["records_per_worker"]) >= r["plan"]["telemetry_messages"]
    assert r["targets"]
    assert all("measured" in t for t in r["targets"])
    # the printed table is the measured results, not a template
    assert f"{r['telemetry']['e2e_rows_per_s']:,}" in text


async def test_broker_check_times_alerts_at_a_bare_consumer_window_by_window(
    tmp_path: Path, redis_url: str
) -> None:
    """The body of ``eriop bench --broker``, with short windows."""
    env = Env(Settings(), None, redis_url, tmp_path, lambda _: None)  # type: ignore[arg-type]
    r = await broker_flow(env, rate=500.0, windows=2, window_s=2.0)
    assert r["flood_produced_msgs_per_s"] > 0
    for w in [r["alone"], *r["windows"]]:
        assert w["received"] == w["sent"] > 0, w
        assert 0 < w["p50_ms"] <= w["p99_ms"] <= w["max_ms"], w
    assert len(r["windows"]) == 2
    text = broker_table({"broker": r, "command": "eriop bench --broker", "date": "d",
                         "machine": {"nproc": 2, "cpu_model": "c", "memory_gb": 1}})  # fmt: skip
    assert f"| 4 s of flood | {r['windows'][1]['received']}/" in text
