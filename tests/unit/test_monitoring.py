"""Prometheus alert rules, Alertmanager's routing and the Grafana dashboard.

The rules are checked and unit-tested with promtool, and every rule of every rules file
must be shown firing by a promtool test; Alertmanager's configuration is checked and its
routes tested with amtool; every metric name that a rule, a rule test or a dashboard
panel refers to must be exported by ``pipeline.metrics.REGISTRY``, and every panel
query is filtered by the dashboard's ``instance`` variable.
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

import pipeline.metrics_front_doors  # noqa: F401 (registers the front doors' metrics)
from pipeline.metrics import REGISTRY

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
RULES = RULES_DIR / "eriop.rules.yml"
RULE_TESTS = RULE_TESTS_DIR / "eriop.rules.test.yml"
PAGING_RULES = RULES_DIR / "eriop-paging.rules.yml"
ALERTMANAGER_CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
AMTOOL = Path("/usr/bin/amtool")
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

#: eriop-paging.rules.yml: every alert pages, on these metrics
PAGING_ALERTS = {
    "EriopDependencyDown": {"eriop_dependency_up"},
    "EriopConsumerPaused": {"eriop_consumer_paused"},
    "EriopConsumerGroupUnassigned": {"eriop_consumer_partitions_assigned"},
    "EriopConsumerGroupRebalancing": {
        "eriop_consumer_rebalancing",
        "eriop_consumer_rebalance_age_seconds",
    },
}
#: what a dependency outage explains, held back by Alertmanager while it pages
DERIVED_FROM_AN_OUTAGE = {
    "EriopConsumerPaused",
    "EriopConsumerLagGrowing",
    "EriopOutboxBacklog",
    "EriopConsumerGroupUnassigned",
    "EriopConsumerGroupRebalancing",
}

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
    "eriop_consumer_partitions_assigned",
    "eriop_consumer_rebalancing",
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


def _rule_files() -> list[Path]:
    files = sorted(RULES_DIR.glob("*.yml"))
    assert RULES in files
    return files


def _rule_test_files() -> list[Path]:
    files = sorted(RULE_TESTS_DIR.glob("*.yml"))
    assert RULE_TESTS in files
    return files


def _rules_of(path: Path) -> list[dict[str, Any]]:
    data = yaml.safe_load(path.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def _every_rule() -> list[dict[str, Any]]:
    return [rule for path in _rule_files() for rule in _rules_of(path)]


def _every_alert() -> dict[str, dict[str, Any]]:
    alerts: dict[str, dict[str, Any]] = {}
    for rule in _every_rule():
        if "alert" in rule:
            assert rule["alert"] not in alerts, f"alert {rule['alert']} defined twice"
            alerts[rule["alert"]] = rule
    return alerts


def untested_rules(rule_files: list[Path], test_files: list[Path]) -> list[str]:
    """``file: name`` of every rule that no promtool test shows at work: an alert no
    ``alert_rule_test`` expects firing, a recording rule no ``promql_expr_test`` queries.
    A test counts only for the rules files its own ``rule_files`` load."""
    firing: dict[Path, set[str]] = {}
    queried: dict[Path, str] = {}
    for test_file in test_files:
        spec = yaml.safe_load(test_file.read_text())
        loaded = {
            rules.resolve()
            for pattern in spec.get("rule_files") or []
            for rules in test_file.parent.glob(pattern)
        }
        for case in spec.get("tests") or []:
            fired = {
                check["alertname"]
                for check in case.get("alert_rule_test") or []
                if check.get("exp_alerts")
            }
            exprs = " ".join(check["expr"] for check in case.get("promql_expr_test") or [])
            for rules in loaded:
                firing.setdefault(rules, set()).update(fired)
                queried[rules] = queried.get(rules, "") + " " + exprs
    missing = []
    for rules_file in rule_files:
        path = rules_file.resolve()
        for rule in _rules_of(rules_file):
            if "alert" in rule:
                if rule["alert"] not in firing.get(path, set()):
                    missing.append(f"{rules_file.name}: {rule['alert']}")
            elif not re.search(
                rf"(?<![\w:]){re.escape(rule['record'])}(?![\w:])", queried.get(path, "")
            ):
                missing.append(f"{rules_file.name}: {rule['record']}")
    return missing


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
    files = _rule_files()
    result = _run(promtool, "check", "rules", *map(str, files))
    assert result.returncode == 0, result.stdout + result.stderr
    for path in files:
        assert f"{len(_rules_of(path))} rules found" in result.stdout, path.name


def test_promtool_test_rules(promtool: str) -> None:
    files = _rule_test_files()
    result = _run(promtool, "test", "rules", *map(str, files))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files), result.stdout


def test_promtool_check_config(promtool: str) -> None:
    result = _run(promtool, "check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    for path in _rule_files():
        assert path.name in result.stdout, f"{path.name} is not loaded by Prometheus"


def test_every_rule_of_every_file_is_shown_firing() -> None:
    missing = untested_rules(_rule_files(), _rule_test_files())
    assert not missing, f"rules without a promtool test that fires them: {missing}"


def test_untested_rules_are_found(tmp_path: Path) -> None:
    rules = tmp_path / "rules" / "a.rules.yml"
    rules.parent.mkdir()
    rules.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "g",
                        "rules": [
                            {"alert": "Fired", "expr": "x > 0"},
                            {"alert": "OnlyQuiet", "expr": "y > 0"},
                            {"alert": "FiredElsewhere", "expr": "z > 0"},
                            {"record": "job:x:sum", "expr": "sum(x)"},
                            {"record": "job:y:sum", "expr": "sum(y)"},
                        ],
                    }
                ]
            }
        )
    )
    tests = tmp_path / "tests"
    tests.mkdir()
    fired = {"exp_alerts": [{"exp_labels": {}}]}
    (tests / "a.test.yml").write_text(
        yaml.safe_dump(
            {
                "rule_files": ["../rules/a.rules.yml"],
                "tests": [
                    {
                        "alert_rule_test": [
                            {"alertname": "Fired", **fired},
                            {"alertname": "OnlyQuiet", "exp_alerts": []},
                        ],
                        "promql_expr_test": [{"expr": "job:x:sum > 1"}],
                    }
                ],
            }
        )
    )
    # fires FiredElsewhere, but without loading a.rules.yml
    (tests / "b.test.yml").write_text(
        yaml.safe_dump(
            {
                "rule_files": ["../rules/other.yml"],
                "tests": [{"alert_rule_test": [{"alertname": "FiredElsewhere", **fired}]}],
            }
        )
    )
    assert untested_rules([rules], sorted(tests.glob("*.yml"))) == [
        "a.rules.yml: OnlyQuiet",
        "a.rules.yml: FiredElsewhere",
        "a.rules.yml: job:y:sum",
    ]


def test_every_alert_has_a_severity_and_annotations() -> None:
    for name, rule in _every_alert().items():
        assert rule["labels"]["severity"] in SEVERITIES, name
        for key in ("summary", "description", "runbook"):
            assert rule["annotations"].get(key, "").strip(), f"{name} lacks annotation {key}"


def test_paging_rules() -> None:
    alerts = {rule["alert"]: rule for rule in _rules_of(PAGING_RULES)}
    assert set(alerts) == set(PAGING_ALERTS)
    for name, metrics in PAGING_ALERTS.items():
        rule = alerts[name]
        assert rule["labels"]["severity"] == "page", name
        assert metric_names(rule["expr"]) == metrics, name
        assert rule.get("for"), f"{name} pages on a single evaluation"
    # Redis has its own page; the generic one must not page twice for it
    assert 'dependency!="redis"' in alerts["EriopDependencyDown"]["expr"]
    assert _every_alert()["EriopRedisUnreachable"]["labels"]["severity"] == "page"
    # a group is empty only when no worker holds any of its partitions
    assert "sum by (job, group)" in alerts["EriopConsumerGroupUnassigned"]["expr"]
    rebalancing = alerts["EriopConsumerGroupRebalancing"]
    assert "> 60" in rebalancing["expr"]
    assert rebalancing["for"] == "1m"


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
    referenced = {name for rule in _every_rule() for name in metric_names(rule["expr"])}
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
    tests = [
        case for path in _rule_test_files() for case in yaml.safe_load(path.read_text())["tests"]
    ]
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


def test_every_panel_query_is_filtered_by_instance() -> None:
    variables = {v["name"]: v for v in _dashboard()["templating"]["list"]}
    instance = variables["instance"]
    assert instance["type"] == "query"
    assert instance["includeAll"] is True
    assert "label_values(eriop_worker_up, instance)" in json.dumps(instance["query"])
    exprs = _dashboard_exprs()
    assert exprs
    for title, expr in exprs:
        selectors = unfiltered_selectors(expr)
        assert not selectors, f"panel {title!r}: not filtered by $instance: {selectors}"


def test_unfiltered_selectors_are_found() -> None:
    assert unfiltered_selectors(
        'sum(rate(a_total{instance=~"$instance"}[5m])) / sum(rate(b_total[5m]))'
        ' + c{job="x"} + d{job="x", instance=~"$instance"} + sum by (instance) (e)'
    ) == ["b_total", 'c{job="x"}', "e"]
    assert unfiltered_selectors('max by (instance) (up{instance=~"$instance"})') == []


def unfiltered_selectors(expr: str) -> list[str]:
    """Metric selectors of ``expr`` without the matcher ``instance=~"$instance"``."""
    names = metric_names(expr)
    found = []
    for match in re.finditer(r"(?<![\w:$])([A-Za-z_:][\w:]*)\s*(\{[^{}]*\})?", expr):
        name, matchers = match.group(1), match.group(2) or ""
        if name in names and 'instance=~"$instance"' not in matchers:
            found.append(name + matchers)
    return found


# ---------------------------------------------------------------------- Alertmanager


@pytest.fixture(scope="session")
def amtool() -> str:
    """amtool from Debian's ``prometheus-alertmanager`` package, installed when missing."""
    if not AMTOOL.exists():
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "prometheus-alertmanager"]
        if subprocess.run(install, env=env, check=False).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, check=True)
            subprocess.run(install, env=env, check=True)
    assert AMTOOL.exists(), "apt-get install -y prometheus-alertmanager did not provide amtool"
    return str(AMTOOL)


def _alertmanager() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    return data


@pytest.fixture
def checkable_alertmanager_config(tmp_path: Path) -> Path:
    """The configuration with each webhook's ``url_file`` (Alertmanager 0.26 and later,
    newer than Debian's amtool 0.25) replaced by a ``url``; nothing else changes."""
    config = _alertmanager()
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs") or []:
            assert hook.pop("url_file").startswith("/run/secrets/"), receiver["name"]
            hook["url"] = f"https://{receiver['name']}.example.invalid/hook"
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_amtool_check_config(amtool: str, checkable_alertmanager_config: Path) -> None:
    result = _run(amtool, "check-config", str(checkable_alertmanager_config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=page", "alertname=EriopDependencyDown"], "pager"),
        (["severity=ticket", "alertname=EriopDeadLetterSpike"], "ticket"),
        (["alertname=Watchdog"], "ticket"),
    ],
)
def test_alertmanager_routes_by_severity(
    amtool: str, checkable_alertmanager_config: Path, labels: list[str], receiver: str
) -> None:
    result = _run(
        amtool,
        "config",
        "routes",
        "test",
        f"--config.file={checkable_alertmanager_config}",
        *labels,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [receiver]


def test_every_severity_of_the_rules_has_a_route() -> None:
    routed = {
        matcher.partition("=")[2].strip('"')
        for route in _alertmanager()["route"]["routes"]
        for matcher in route["matchers"]
        if matcher.startswith("severity=")
    }
    used = {rule["labels"]["severity"] for rule in _every_alert().values()}
    assert used <= routed


def _matches(matchers: list[str], labels: dict[str, str]) -> bool:
    for matcher in matchers:
        name, op, value = re.fullmatch(r'(\w+)\s*(=~|!~|!=|=)\s*"(.*)"', matcher).groups()  # type: ignore[union-attr]
        actual = labels.get(name, "")
        ok = {
            "=": actual == value,
            "!=": actual != value,
            "=~": re.fullmatch(value, actual) is not None,
            "!~": re.fullmatch(value, actual) is None,
        }[op]
        if not ok:
            return False
    return True


def test_a_dependency_outage_inhibits_what_follows_from_it() -> None:
    alerts = _every_alert()
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    external = config["global"]["external_labels"]
    inhibitions = _alertmanager()["inhibit_rules"]
    for rule in inhibitions:
        # one deployment's outage never silences another's
        assert rule["equal"] == ["system"]
        assert "system" in external
    for source in ("EriopDependencyDown", "EriopRedisUnreachable"):
        source_labels = {"alertname": source, **alerts[source]["labels"]}
        assert source_labels["severity"] == "page"
        held = {
            name
            for name, rule in alerts.items()
            for inhibit in inhibitions
            if _matches(inhibit["source_matchers"], source_labels)
            and _matches(inhibit["target_matchers"], {"alertname": name, **rule["labels"]})
        }
        assert held >= DERIVED_FROM_AN_OUTAGE, source
        assert source not in held
        # what is not a consequence still pages: the worker itself, the dependency
        assert not held & {"EriopPipelineDown", "EriopDependencyDown", "EriopRedisUnreachable"}
    named = {
        name
        for rule in inhibitions
        for matcher in rule["source_matchers"] + rule["target_matchers"]
        if matcher.startswith("alertname")
        for name in re.findall(r"Eriop\w+", matcher)
    }
    assert named <= set(alerts), f"inhibition names unknown alerts: {named - set(alerts)}"


def test_prometheus_sends_to_alertmanager() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = [
        target
        for manager in config["alerting"]["alertmanagers"]
        for static in manager["static_configs"]
        for target in static["targets"]
    ]
    assert targets == ["alertmanager:9093"]
