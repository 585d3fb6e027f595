"""The benchmark's repeated throughput trials: the median trial is reported,
every trial is kept, and the table says how the ratio was taken."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from eriop.bench import report as bench_report
from eriop.bench.command import plan_for
from eriop.bench.scenarios import Env, Plan, trials
from pipeline.settings import Settings


def _env(said: list[str]) -> Env:
    return Env(Settings(), None, "redis://unused", Path("."), said.append)  # type: ignore[arg-type]


def _plan(n: int) -> Plan:
    return replace(plan_for(argparse.Namespace(smoke=True)), trials=n)


async def test_the_median_trial_is_reported_with_every_trial() -> None:
    ratios = iter([0.9, 0.5, 0.7])

    async def flow(_env: Env, _plan: Plan) -> dict[str, Any]:
        r = next(ratios)
        return {"ratio": r, "e2e_rows_per_s": int(r * 100), "copy_rows_per_s": 100}

    said: list[str] = []
    out = await trials(flow, _env(said), _plan(3))
    assert out["ratio"] == 0.7
    assert out["e2e_rows_per_s"] == 70
    assert out["ratio_range"] == [0.5, 0.9]
    assert [t["ratio"] for t in out["trials"]] == [0.9, 0.5, 0.7]
    assert said == ["trial 1 of 3", "trial 2 of 3", "trial 3 of 3"]
    assert bench_report._ratio(out) == "0.70  (median of 3 trials; 0.50 to 0.90)"


async def test_one_trial_is_reported_as_it_ran() -> None:
    async def flow(_env: Env, _plan: Plan) -> dict[str, Any]:
        return {"ratio": 0.61, "e2e_rows_per_s": 61, "copy_rows_per_s": 100}

    said: list[str] = []
    out = await trials(flow, _env(said), _plan(1))
    assert out == {"ratio": 0.61, "e2e_rows_per_s": 61, "copy_rows_per_s": 100}
    assert said == []
    assert bench_report._ratio(out) == "0.61"
