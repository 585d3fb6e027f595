"""``eriop status``: the state read from two metrics pages, and a clear exit 69
when nothing answers."""

from __future__ import annotations

import os
import subprocess
import sys

from eriop.dev.stack import free_port
from eriop.status import Scrape, render, summarize
from pipeline.errors import EXIT_UNAVAILABLE

FIRST = """\
# HELP eriop_records_consumed_total Kafka records taken from an inbound topic.
# TYPE eriop_records_consumed_total counter
eriop_records_consumed_total{topic="gps.raw"} 100.0
eriop_records_consumed_total{topic="alerts.json"} 5.0
# HELP eriop_records_total Kafka records by final outcome.
# TYPE eriop_records_total counter
eriop_records_total{outcome="stored",topic="gps.raw"} 90.0
eriop_records_total{outcome="dead_lettered",topic="gps.raw"} 10.0
# HELP eriop_dead_letters_total Records sent to eriop.dlq.
# TYPE eriop_dead_letters_total counter
eriop_dead_letters_total{error_code="unknown_device",stage="normalize",topic="gps.raw"} 10.0
eriop_dead_letters_total{error_code="not_json",stage="decode",topic="gps.raw"} 0.0
# HELP eriop_end_to_end_latency_seconds Time.
# TYPE eriop_end_to_end_latency_seconds histogram
eriop_end_to_end_latency_seconds_bucket{clock="receive",le="0.1",stream="gps"} 3.0
"""
SECOND = (
    FIRST.replace('{topic="gps.raw"} 100.0', '{topic="gps.raw"} 300.0')
    .replace('{outcome="stored",topic="gps.raw"} 90.0', '{outcome="stored",topic="gps.raw"} 270.0')
    .replace('topic="gps.raw"} 10.0', 'topic="gps.raw"} 30.0')
    + """\
# HELP eriop_consumer_lag_records Records behind.
# TYPE eriop_consumer_lag_records gauge
eriop_consumer_lag_records{partition="0",topic="gps.raw"} 7.0
eriop_consumer_lag_records{partition="1",topic="gps.raw"} 5.0
# HELP eriop_consumer_paused 1 while paused.
# TYPE eriop_consumer_paused gauge
eriop_consumer_paused{stream="alerts"} 0.0
eriop_consumer_paused{stream="bulk"} 1.0
# HELP eriop_consumer_partitions_assigned Partitions.
# TYPE eriop_consumer_partitions_assigned gauge
eriop_consumer_partitions_assigned{group="eriop-bulk"} 0.0
# HELP eriop_consumer_rebalancing Rebalancing.
# TYPE eriop_consumer_rebalancing gauge
eriop_consumer_rebalancing{group="eriop-bulk"} 1.0
# HELP eriop_outbox_pending Backlog.
# TYPE eriop_outbox_pending gauge
eriop_outbox_pending 4.0
"""
)
HEALTH = {
    "status": "unhealthy", "ok": False, "ready": False,
    "dependencies": {"postgres": {"ok": False, "error": "connection refused"},
                     "kafka": {"ok": True}},
}  # fmt: skip


def test_rates_lag_paused_groups_outbox_and_dead_letters() -> None:
    state = summarize(Scrape(HEALTH, FIRST, SECOND, 2.0))
    gps = state["topics"]["gps.raw"]
    assert gps["consumed_per_s"] == 100.0
    assert gps["stored_per_s"] == 90.0
    assert gps["dead_lettered_per_s"] == 10.0
    assert gps["lag_records"] == 12.0
    assert state["topics"]["alerts.json"]["consumed_per_s"] == 0.0
    assert state["topics"]["alerts.json"]["lag_records"] is None
    assert state["paused_streams"] == ["bulk"]
    # the age series is absent on this page: shown as unknown, not as 0
    assert state["groups"] == {
        "eriop-bulk": {"partitions": 0, "rebalancing": True, "since_rebalance_s": None}
    }
    assert state["outbox_pending"] == 4.0
    assert state["dead_letters_total"] == 30.0
    assert state["dead_letters_by_code"] == {"unknown_device": 30.0}
    text = render("http://w:9108", state)
    assert text.startswith("worker at http://w:9108: unhealthy (not ready)\n")
    assert "dependencies: postgres DOWN (connection refused), kafka up" in text
    assert "paused streams: bulk" in text
    assert "outbox backlog: 4 alerts not yet published" in text
    assert "dead letters: 30 since start (10/s now): unknown_device 30" in text


def test_nothing_answering_exits_69() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [sys.executable, "-m", "eriop.cli", "status", "--url", url],
        capture_output=True, text=True, timeout=60, env={**os.environ},
    )  # fmt: skip
    assert done.returncode == EXIT_UNAVAILABLE
    assert f"eriop status: nothing answers at {url}" in done.stderr
    assert "Traceback" not in done.stderr
