"""Alert rules of the front doors: valid, unit-tested firing and quiet, and built on
metrics that pipeline.metrics exports."""

from __future__ import annotations

import yaml

import pipeline.metrics_front_doors  # noqa: F401 (registers the front doors' metrics)
from tests.unit.test_monitoring import PROMETHEUS_DIR, _run, metric_names, promtool, registry_names

RULES = PROMETHEUS_DIR / "rules" / "eriop-front-doors.rules.yml"
RULE_TESTS = PROMETHEUS_DIR / "tests" / "eriop-front-doors.rules.test.yml"
__all__ = ["promtool"]


def _rules() -> list[dict[str, object]]:
    data = yaml.safe_load(RULES.read_text())
    return [r for g in data["groups"] for r in g["rules"]]


def test_promtool_checks_and_tests_the_rules(promtool: str) -> None:
    checked = _run(promtool, "check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = _run(promtool, "test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_rules_use_exported_metrics_and_are_tested() -> None:
    exported = registry_names()
    alerts = {str(r["alert"]) for r in _rules()}
    assert alerts == {"EriopCapSourceFailing", "EriopMqttBridgeDisconnected"}
    for rule in _rules():
        assert metric_names(str(rule["expr"])) <= exported, rule["alert"]
        assert rule["labels"]["severity"] in ("page", "ticket")  # type: ignore[index]
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    tested = {t["alertname"] for case in tests for t in case["alert_rule_test"]}
    assert tested == alerts
    for case in tests:
        for series in case["input_series"]:
            assert metric_names(series["series"]) <= exported
