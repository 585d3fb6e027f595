"""Settings as operators meet them: one source of truth, typos caught, errors named."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.environment import (
    TOOL_VARIABLES,
    effective,
    load_settings,
    reference,
    unknown_variables,
    variables,
)
from pipeline.errors import EXIT_CONFIG, ConfigError
from pipeline.runtime import logs
from pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[2]
#: names the docs use as examples of the scheme or of a typo
EXAMPLES = frozenset({"ERIOP_A__B_C", "ERIOP_KAFKA_PARTITIONS"})


def test_the_configuration_reference_is_generated_from_the_settings() -> None:
    assert (REPO / "docs/configuration.md").read_text() == reference(), (
        "docs/configuration.md is stale: eriop config --reference > docs/configuration.md"
    )


def test_every_setting_says_what_it_does() -> None:
    undocumented = [v.name for v in variables() if not v.doc]
    assert not undocumented


def test_docs_and_deploy_files_name_only_real_variables() -> None:
    known = {v.name for v in variables()} | TOOL_VARIABLES
    prefixes = tuple(v.name + "__" for v in variables() if v.open_below)
    files = [REPO / "README.md", REPO / "docker-compose.yml", REPO / "deploy/Dockerfile"]
    files += sorted((REPO / "docs").glob("*.md"))
    wrong: set[tuple[str, str]] = set()
    for f in files:
        for name in re.findall(r"\bERIOP_[A-Z0-9_]*[A-Z0-9]", f.read_text()):
            if name in EXAMPLES:
                continue
            if name not in known and not name.startswith(prefixes):
                wrong.add((f.name, name))
    assert not wrong


def test_docs_name_settings_by_their_real_dotted_paths() -> None:
    paths = {v.path for v in variables()}
    groups = {p.split(".")[0] for p in paths if "." in p}
    pattern = re.compile(r"`(" + "|".join(sorted(groups)) + r")\.([a-z_]+)`")
    wrong = {
        (f.name, f"{g}.{field}")
        for f in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
        for g, field in pattern.findall(f.read_text())
        # a setting named without its unit (``axis.max_event_age`` for ``…_s``) implies
        # a variable that fails validation at start
        if f"{g}.{field}" not in paths
        and any(f"{g}.{field}{unit}" in paths for unit in ("_s", "_ms", "_m", "_mps", "_days"))
    }
    assert not wrong


def test_a_misspelt_variable_stops_the_start_with_the_closest_name() -> None:
    assert unknown_variables({"ERIOP_KAFKA_PARTITIONS": "9"}) == [
        ("ERIOP_KAFKA_PARTITIONS", "ERIOP_KAFKA__PARTITIONS")
    ]
    with pytest.raises(ConfigError, match=r"did you mean ERIOP_KAFKA__PARTITIONS\?") as err:
        load_settings({"ERIOP_KAFKA_PARTITIONS": "9"})
    assert err.value.exit_code == EXIT_CONFIG


def test_known_names_groups_and_tool_variables_pass() -> None:
    environ = {
        "ERIOP_KAFKA__PARTITIONS": "3",
        "eriop_metrics_port": "1",
        "ERIOP_KAFKA": "{}",
        "ERIOP_ALARM__ACCOUNTS": "{}",
        "ERIOP_TEST_PG": "x",
        "PATH": "/bin",
    }
    assert unknown_variables(environ) == []


def test_a_bad_value_is_named_by_its_variable_and_never_echoed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ERIOP_KAFKA__PARTITIONS", "many")
    monkeypatch.setenv("ERIOP_ALARM__ACCOUNTS", '{"1234": {"key": "not-hex-s3cret"}}')
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "ERIOP_KAFKA__PARTITIONS" in err.value.reason
    assert "ERIOP_ALARM__ACCOUNTS__1234__KEY" in err.value.reason
    assert "s3cret" not in err.value.reason


def test_a_retired_setting_is_named_in_a_warning_and_does_not_stop_the_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ERIOP_BATCH__ALERT_LINGER_MS", "2")
    assert unknown_variables({"ERIOP_BATCH__ALERT_LINGER_MS": "2"}) == []
    with caplog.at_level(logging.WARNING):
        settings = load_settings()
    assert settings.batch.alerts_max_records > 0
    assert "ERIOP_BATCH__ALERT_LINGER_MS is no longer a setting" in caplog.text


def test_fetch_wait_is_short_on_the_embedded_broker_only() -> None:
    assert Settings(embedded_broker=True).effective_fetch_wait_ms <= 10
    assert Settings(embedded_broker=False).effective_fetch_wait_ms == 500
    assert Settings(kafka={"fetch_max_wait_ms": 50}).effective_fetch_wait_ms == 50


def test_the_command_line_exits_78_on_a_typo() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "eriop.cli", "config"],
        env={"ERIOP_KAFKA_PARTITIONS": "9", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == EXIT_CONFIG
    assert "did you mean ERIOP_KAFKA__PARTITIONS?" in done.stderr


def test_secrets_come_from_files_nested_ones_too(tmp_path: Path) -> None:
    (tmp_path / "eriop_database_url").write_text("postgresql://u:pw@db/eriop")
    (tmp_path / "eriop_kafka__sasl_password").write_text("sasl-pw")
    s = Settings(_secrets_dir=tmp_path)  # type: ignore[call-arg]
    assert s.database_url.get_secret_value() == "postgresql://u:pw@db/eriop"
    assert s.kafka.sasl_password is not None
    assert s.kafka.sasl_password.get_secret_value() == "sasl-pw"
    shown = dict(effective(s))
    assert shown["ERIOP_DATABASE_URL"] == "**********"
    assert "pw@" not in json.dumps(shown)


def test_json_logs_carry_the_record_context(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("info", "json")
    try:
        logging.getLogger("pipeline.test").warning(
            "giving up", extra={"topic": "gps.raw", "partition": 2, "offset": 41}
        )
        line = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        logs.configure("info", "text")
    doc = json.loads(line)
    assert doc["message"] == "giving up"
    assert doc["level"] == "WARNING"
    assert (doc["topic"], doc["partition"], doc["offset"]) == ("gps.raw", 2, 41)


def test_log_levels_and_formats_are_checked() -> None:
    with pytest.raises(ValueError, match="log level"):
        logs.configure("loud")
    with pytest.raises(ValueError, match="log format"):
        logs.configure("info", "xml")
