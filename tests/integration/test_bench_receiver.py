"""``eriop bench --receiver`` works: a few panels, every frame acknowledged, the
numbers it reports hang together (its timings are the bench's, never a pass/fail)."""

from __future__ import annotations

from pathlib import Path

from eriop.bench.receiver import receiver_flow, table


async def test_receiver_scenario_reports_what_it_measured(tmp_path: Path) -> None:
    result = await receiver_flow(tmp_path, print, panels=20, rate=20.0, seconds=2.0)
    assert result["frames_sent"] > 0
    assert result["frames_acked"] == result["frames_sent"]
    assert result["never_acknowledged"] == 0
    assert result["receiver_acks_counted"] == result["frames_acked"]
    lat = result["ack_latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert "never acknowledged | 0" in table(result)
