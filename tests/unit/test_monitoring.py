"""Prometheus alert rules and the Grafana dashboard.

The rules are checked and unit-tested with promtool; every metric name that a rule, a rule
test or a dashboard panel refers to must be exported by ``pipeline.metrics.REGISTRY``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.metrics import REGISTRY

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES = PROMETHEUS_DIR / "rules" / "eriop.rules.yml"
RULE_TESTS = PROMETHEUS_DIR / "tests" / "eriop.rules.test.yml"
GRAFANA_DIR = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "eriop.json"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
PROMTOOL = Path("/usr/bin/promtool")

EXPECTED_ALERTS = {
    "EriopPipelineDown": "page",
    "EriopConsumerLagGrowing": None,
    "EriopDeadLetterSpike": None,
    "EriopAlertLatencyHigh": "page",
    "EriopDatabaseWriteFailures": None,
    "EriopRedisUnreachable": None,
    "EriopOutboxBacklog": None,
    "EriopBulkProcessRestarting": "ticket",
    "EriopAlarmLinesFailed": "ticket",
    "EriopLineSupervisionStalled": "page",
}
SEVERITIES = {"page", "ticket"}

#: series Prometheus itself attaches to every scrape, not exported by the worker
SCRAPE_SERIES = frozenset({"up"})

#: what the dashboard must show, by metric
DASHBOARD_METRICS = {
    "eriop_records_total",
    "eriop_records_consumed_total",
    "eriop_dead_letters_total",
    "eriop_consumer_lag_records",
    "eriop_end_to_end_latency_seconds_bucket",
    "eriop_batch_size_records_bucket",
    "eriop_db_write_seconds_bucket",
    "eriop_db_errors_total",
    "eriop_redis_publish_total",
    "eriop_outbox_pending",
    "eriop_dependency_up",
    "eriop_geofence_events_total",
    "eriop_location_flags_total",
}

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "enum": ("",),
    "unknown": ("",),
}

#: PromQL words that are not metrics. Functions are told by their call (a name followed by
#: its argument list); aggregations are listed because ``sum by (x) (...)`` separates them.
_PROMQL_KEYWORDS = frozenset(
    {
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "bool",
        "inf",
        "nan",
    }
)

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_IDENTIFIER = re.compile(r"(?<![\w:.$])([A-Za-z_:][\w:]*)(\s*\()?")


# ---------------------------------------------------------------------------- helpers


@pytest.fixture(scope="session")
def promtool() -> str:
    """promtool from Debian's ``prometheus`` package, installed when it is missing."""
    if not PROMTOOL.exists():
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "prometheus"]
        if subprocess.run(install, env=env, check=False).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, check=True)
            subprocess.run(install, env=env, check=True)
    assert PROMTOOL.exists(), "apt-get install -y prometheus did not provide promtool"
    return str(PROMTOOL)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)


def registry_names() -> set[str]:
    """Every series name the worker's registry can export, whether or not it has samples."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
        names.update(sample.name for sample in family.samples)
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression (Grafana variables allowed)."""
    text = _STRING.sub(" ", expr)
    text = _GRAFANA_VARIABLE.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(r" \1 ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word, call = match.group(1), match.group(2)
        if not call and word.lower() not in _PROMQL_KEYWORDS:
            names.add(word)
    return names


def _rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def _alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in _rules() if "alert" in rule}


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels") or [])


def _dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title, expression) for every query of every panel."""
    return [
        (panel["title"], target["expr"])
        for panel in _panels(_dashboard()["panels"])
        for target in panel.get("targets") or []
        if target.get("expr")
    ]


# ----------------------------------------------------------------- the name extractor


def test_metric_names_ignores_functions_keywords_and_labels() -> None:
    expr = (
        'sum by (topic, le) (rate(foo_bucket{stream="alerts", le=~"0.1|+Inf"}[$__rate_interval]))'
        " / on (topic) group_left () sum without (instance) (bar_total offset 1h)"
        ' > 0.05 and absent(baz{job="x"}) or label_replace(qux, "dst", "$1", "src", "(.*)")'
        " unless histogram_quantile(0.99, sum(rate(lat_bucket[5m:1m])) by (le)) > bool 1e3"
    )
    assert metric_names(expr) == {"foo_bucket", "bar_total", "baz", "qux", "lat_bucket"}


def test_registry_names_include_exported_suffixes() -> None:
    names = registry_names()
    assert {
        "eriop_records_total",
        "eriop_records_created",
        "eriop_end_to_end_latency_seconds_bucket",
        "eriop_end_to_end_latency_seconds_sum",
        "eriop_end_to_end_latency_seconds_count",
        "eriop_outbox_pending",
        "eriop_build_info",
    } <= names
    # counters are exported with _total only
    assert "eriop_records" not in names


# ----------------------------------------------------------------------------- rules


def test_promtool_check_rules(promtool: str) -> None:
    result = _run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(_rules())} rules found" in result.stdout


def test_promtool_test_rules(promtool: str) -> None:
    result = _run(promtool, "test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_config(promtool: str) -> None:
    result = _run(promtool, "check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert RULES.name in result.stdout


def test_expected_alerts_with_severity_and_annotations() -> None:
    alerts = _alerts()
    assert set(alerts) == set(EXPECTED_ALERTS)
    for name, rule in alerts.items():
        severity = rule["labels"]["severity"]
        assert severity in SEVERITIES, name
        if EXPECTED_ALERTS[name]:
            assert severity == EXPECTED_ALERTS[name], name
        annotations = rule["annotations"]
        for key in ("summary", "description", "runbook"):
            assert annotations.get(key, "").strip(), f"{name} lacks annotation {key}"


def test_alert_expressions_use_the_intended_metrics() -> None:
    alerts = _alerts()
    expected = {
        "EriopPipelineDown": {"up", "eriop_worker_up"},
        "EriopConsumerLagGrowing": {"eriop_consumer_lag_records"},
        "EriopDeadLetterSpike": {"eriop_dead_letters_total", "eriop_records_consumed_total"},
        "EriopAlertLatencyHigh": {"eriop_end_to_end_latency_seconds_bucket"},
        "EriopDatabaseWriteFailures": {"eriop_db_errors_total"},
        "EriopRedisUnreachable": {"eriop_dependency_up"},
        "EriopOutboxBacklog": {"eriop_outbox_pending"},
        "EriopBulkProcessRestarting": {"eriop_bulk_process_restarts_total"},
        "EriopAlarmLinesFailed": {"eriop_supervision_accounts_failed"},
        "EriopLineSupervisionStalled": {"eriop_supervision_last_check_timestamp_seconds"},
    }
    for name, metrics in expected.items():
        assert metric_names(alerts[name]["expr"]) == metrics, name
    latency = alerts["EriopAlertLatencyHigh"]["expr"]
    assert 'stream="alerts"' in latency
    assert 'clock="receive"' in latency
    assert "histogram_quantile" in latency
    assert "0.99" in latency


def test_rule_metrics_exist_in_registry() -> None:
    known = registry_names() | SCRAPE_SERIES
    referenced = {name for rule in _rules() for name in metric_names(rule["expr"])}
    assert referenced, "no metric names found in the rules"
    assert referenced <= known, f"unknown metrics in rules: {sorted(referenced - known)}"


def test_every_alert_is_tested_firing_and_quiet() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests:
        for check in case.get("alert_rule_test") or []:
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert firing >= set(EXPECTED_ALERTS), f"never shown firing: {set(EXPECTED_ALERTS) - firing}"
    assert quiet >= set(EXPECTED_ALERTS), f"never shown quiet: {set(EXPECTED_ALERTS) - quiet}"


def test_rule_test_series_exist_in_registry() -> None:
    known = registry_names() | SCRAPE_SERIES
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    series = {
        item["series"].split("{", 1)[0].strip()
        for case in tests
        for item in case.get("input_series") or []
    }
    assert series <= known, f"unknown metrics in rule tests: {sorted(series - known)}"


# ------------------------------------------------------------------------- dashboard


def test_dashboard_metrics_exist_in_registry() -> None:
    known = registry_names() | SCRAPE_SERIES
    exprs = _dashboard_exprs()
    assert exprs, "the dashboard has no queries"
    for title, expr in exprs:
        unknown = metric_names(expr) - known
        assert not unknown, f"panel {title!r}: unknown metrics {sorted(unknown)}"


def test_dashboard_covers_the_pipeline() -> None:
    shown = {name for _, expr in _dashboard_exprs() for name in metric_names(expr)}
    assert shown >= DASHBOARD_METRICS, f"not on the dashboard: {DASHBOARD_METRICS - shown}"
    latency = [
        expr
        for _, expr in _dashboard_exprs()
        if 'stream="alerts", clock="receive"' in expr and "histogram_quantile" in expr
    ]
    for quantile in ("0.50", "0.95", "0.99"):
        assert any(f"histogram_quantile({quantile}," in expr for expr in latency), quantile


def test_dashboard_expressions_parse(promtool: str, tmp_path: Path) -> None:
    rules = [
        {
            "record": f"eriop_dashboard:query_{index}",
            "expr": _GRAFANA_VARIABLE.sub("5m", expr),
        }
        for index, (_, expr) in enumerate(_dashboard_exprs())
    ]
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = _run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_structure() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"]
    assert dashboard["title"]
    datasource_uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    panels = list(_panels(dashboard["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    occupied: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (grid["x"] + dx, grid["y"] + dy) for dx in range(grid["w"]) for dy in range(grid["h"])
        }
        assert not cells & occupied, f"panel {panel['title']!r} overlaps another"
        occupied |= cells
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == datasource_uid, panel["title"]
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == datasource_uid, panel["title"]
