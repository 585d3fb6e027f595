"""Merging the worker's metrics page with its bulk processes' pages."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.runtime.metrics_merge import counters_only, merge_exposition, metric_sum


def _page(consumed: dict[str, int], up: float, lag: float | None, latencies: list[float]) -> str:
    reg = CollectorRegistry()
    c = Counter("eriop_records_consumed_total", "consumed", ["topic"], registry=reg)
    for topic, n in consumed.items():
        c.labels(topic).inc(n)
    Gauge("eriop_worker_up", "up", registry=reg).set(up)
    g = Gauge("eriop_consumer_lag_records", "lag", ["topic", "partition"], registry=reg)
    if lag is not None:
        g.labels("telemetry.raw", "0").set(lag)
    h = Histogram("eriop_db_write_seconds", "db", ["stream"], buckets=(0.1, 1.0), registry=reg)
    for x in latencies:
        h.labels("telemetry").observe(x)
    return generate_latest(reg).decode()


def _samples(page: bytes | str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(page if isinstance(page, str) else page.decode())
        for s in fam.samples
        if not s.name.endswith("_created")
    }


def test_counters_and_histograms_add_up_gauges_prefer_the_worker() -> None:
    worker = _page({"alerts.json": 5}, up=1, lag=None, latencies=[])
    bulk_a = _page({"telemetry.raw": 100}, up=0, lag=7, latencies=[0.05, 0.5])
    bulk_b = _page({"telemetry.raw": 50, "gps.raw": 3}, up=0, lag=2, latencies=[2.0])
    merged = merge_exposition([worker, bulk_a, bulk_b])
    s = _samples(merged)
    assert s[("eriop_records_consumed_total", (("topic", "alerts.json"),))] == 5
    assert s[("eriop_records_consumed_total", (("topic", "telemetry.raw"),))] == 150
    assert s[("eriop_records_consumed_total", (("topic", "gps.raw"),))] == 3
    assert s[("eriop_worker_up", ())] == 1  # the worker's own, not a child's 0
    assert s[("eriop_consumer_lag_records", (("partition", "0"), ("topic", "telemetry.raw")))] == 7
    tele = (("stream", "telemetry"),)
    assert s[("eriop_db_write_seconds_count", tele)] == 3
    assert s[("eriop_db_write_seconds_sum", tele)] == 2.55
    assert s[("eriop_db_write_seconds_bucket", (("le", "0.1"), *tele))] == 1
    assert s[("eriop_db_write_seconds_bucket", (("le", "1.0"), *tele))] == 2
    assert s[("eriop_db_write_seconds_bucket", (("le", "+Inf"), *tele))] == 3


def test_each_family_is_declared_once() -> None:
    page = _page({"alerts.json": 1}, up=1, lag=1, latencies=[0.2])
    merged = merge_exposition([page, page, page]).decode()
    for family in ("eriop_records_consumed_total", "eriop_worker_up", "eriop_db_write_seconds"):
        assert merged.count(f"# TYPE {family} ") == 1, family
    assert _samples(merged)[("eriop_records_consumed_total", (("topic", "alerts.json"),))] == 3


def test_metric_sum_adds_the_samples_that_match_the_labels() -> None:
    page = _page({"alerts.json": 2, "gps.raw": 3}, up=1, lag=None, latencies=[])
    assert metric_sum(page, "eriop_records_consumed_total") == 5
    assert metric_sum(page, "eriop_records_consumed_total", topic="gps.raw") == 3
    assert metric_sum(page, "eriop_records_consumed_total", topic="telemetry.raw") == 0


def test_counters_only_keeps_what_adds_up_over_processes() -> None:
    page = _page({"telemetry.raw": 9}, up=1, lag=4, latencies=[0.5])
    kept = _samples(counters_only(page))
    assert kept[("eriop_records_consumed_total", (("topic", "telemetry.raw"),))] == 9
    assert kept[("eriop_db_write_seconds_count", (("stream", "telemetry"),))] == 1
    assert not [
        name for name, _ in kept if name in ("eriop_worker_up", "eriop_consumer_lag_records")
    ]
    assert counters_only("") == ""


def test_partitions_assigned_are_shares_that_add_up() -> None:
    def share(n: int) -> str:
        reg = CollectorRegistry()
        g = Gauge("eriop_consumer_partitions_assigned", "p", ["group"], registry=reg)
        g.labels("eriop-bulk").set(n)
        return generate_latest(reg).decode()

    merged = _samples(merge_exposition([share(0), share(2), share(2)]))
    assert merged[("eriop_consumer_partitions_assigned", (("group", "eriop-bulk"),))] == 4
