"""``eriop decode``: every sample message of docs/formats.md decodes to what its
``expect`` says, with no Kafka and no database."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from eriop.decode.command import run_decode
from pipeline.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from pipeline.settings import Settings
from tests.samples import SAMPLES, assert_subset, load_fixtures, load_samples

TOPICS = ["alerts.alarm", "alerts.axis", "alerts.cap", "alerts.json", "telemetry.raw", "gps.raw"]
FIXTURES = SAMPLES / "fixtures.json"
ROOT = Path(__file__).resolve().parents[2]


def fixture_settings() -> Settings:
    return Settings(alarm=load_fixtures()["config"]["alarm"])


def args(topic: str, file: str, **kw: Any) -> argparse.Namespace:
    base: dict[str, Any] = dict(
        topic=topic, file=file, lines=False, jsonl=False, key=None, header=None,
        time=None, resources=None, json=False,
    )  # fmt: skip
    return argparse.Namespace(**(base | kw))


def decode_json(
    capsys: pytest.CaptureFixture[str], topic: str, file: str, **kw: Any
) -> tuple[int, list[dict[str, Any]]]:
    code = run_decode(fixture_settings(), args(topic, file, json=True, **kw))
    out = capsys.readouterr().out
    return code, [json.loads(line) for line in out.splitlines()]


def _one(result: dict[str, Any], intent: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [i for i in result["intents"] if i["intent"] == intent]
    assert len(found) == 1, result["intents"]
    return found[0]


def check(expect: dict[str, Any], got: dict[str, Any], stored: dict[Any, Any]) -> None:
    """One decoded message against its sample's ``expect`` (docs/formats.md 8)."""
    outcome = expect["outcome"]
    if outcome == "dlq":
        assert got["outcome"] == "dead_letter"
        letter = got["dead_letter"]
        assert (letter["stage"], letter["error_code"]) == (expect["stage"], expect["error_code"])
        assert letter["reason"]
        return
    assert "dead_letter" not in got
    if outcome in ("alert", "duplicate"):
        assert got["outcome"] == "alert"
        alert = _one(got, "store_alert")["alert"]
        ident = (alert["source"], alert["external_id"])
        if outcome == "duplicate":
            assert ident == (expect["source"], expect["external_id"])
            assert ident in stored
        else:
            assert_subset(expect["alert"], alert)
            stored[ident] = alert
    elif outcome in ("restore", "cancel"):
        assert got["outcome"] == "patch"
        patches = [i for i in got["intents"] if i["intent"] == "patch_alert"]
        targets = expect.get("cancels") or [expect["restores"]]
        assert len(patches) == len(targets)
        for patch, target in zip(patches, targets, strict=True):
            assert patch["kind"] == outcome
            alert = stored[(target["source"], target["external_id"])]
            assert patch["source"] == alert["source"]
            if "external_id" in patch:
                assert patch["external_id"] == alert["external_id"]
            else:
                assert patch["match_key"] == alert["metadata"]["match_key"]
            assert_subset(expect["metadata_patch"], patch["metadata_patch"])
            if "status_if_new" in expect:
                assert patch["status_from_new"] == expect["status_if_new"]
    elif outcome == "activity":
        assert got["outcome"] == "telemetry"
        assert_subset(expect["telemetry"], _one(got, "store_telemetry")["rows"])
        redis = {i["key"]: i["value"] for i in got["intents"] if i["intent"] == "set_redis"}
        assert_subset(expect.get("redis", {}), redis)
    elif outcome == "telemetry":
        assert got["outcome"] == "telemetry"
        assert_subset(expect["rows"], _one(got, "store_telemetry")["rows"])
    elif outcome == "location":
        assert got["outcome"] == "location"
        locations = _one(got, "store_locations")
        assert_subset([expect["row"]], locations["rows"])
        assert locations["moves_resource"] == [expect["moves_resource"]]
    elif outcome == "discard":
        assert got["outcome"] == "discard"
        assert _one(got, "discard")["reason"] == expect["reason"]
    else:
        pytest.fail(f"unknown outcome {outcome}")


@pytest.mark.parametrize("topic", TOPICS)
def test_every_sample_decodes_as_expected(topic: str, capsys: pytest.CaptureFixture[str]) -> None:
    file = str(SAMPLES / f"{topic}.jsonl")
    code, results = decode_json(capsys, topic, file, jsonl=True, resources=str(FIXTURES))
    lines = load_samples(topic)
    assert len(results) == len(lines)
    stored: dict[Any, Any] = {}
    for n, (line, got) in enumerate(zip(lines, results, strict=True), 1):
        assert got["message"] == n
        try:
            check(line["expect"], got, stored)
        except AssertionError as exc:
            raise AssertionError(f"{topic} line {n}: {exc}\n{json.dumps(got)[:2000]}") from exc
    dead = any(line["expect"]["outcome"] == "dlq" for line in lines)
    assert code == (EXIT_FAILURE if dead else EXIT_OK)


def test_a_raw_message_from_stdin_as_text() -> None:
    """The command line: a raw GPS message on stdin, key and time given, text out;
    then a sample file of which some lines are dead-lettered (exit 1)."""
    env = {**os.environ, "ERIOP_LOG_LEVEL": "warning"}
    fix = b'{"lat": 60.1921, "lon": 24.9458, "time": "2025-03-14T10:20:00Z", "speed": 13.9}'
    cli = [sys.executable, "-m", "eriop.cli", "decode"]
    done = subprocess.run(
        [*cli, "gps.raw", "-", "--key", "ENG-7", "--time", "2025-03-14T10:20:01Z",
         "--resources", str(FIXTURES)],
        input=fix, capture_output=True, env=env, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == EXIT_OK, done.stderr
    out = done.stdout.decode()
    assert out.startswith("message 1 (gps.raw): location: 1 fix\n")
    assert "resource_id: 2441ec2a-ce83-4f28-9c7c-3cff47793b53" in out
    assert "moves_resource:\n" in out

    # unknown resource: a dead letter with its code, stage and reason
    done = subprocess.run(
        [*cli, "gps.raw", "--key", "nobody", "--time", "2025-03-14T10:20:01Z",
         "--resources", str(FIXTURES)],
        input=fix, capture_output=True, env=env, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == EXIT_FAILURE, done.stderr
    assert "dead letter: unknown_device at stage normalize: no resource" in done.stdout.decode()

    samples = subprocess.run(
        [*cli, "alerts.json", str(SAMPLES / "alerts.json.jsonl"), "--jsonl", "--json"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert samples.returncode == EXIT_FAILURE, samples.stderr
    dead = [json.loads(line)["outcome"] == "dead_letter" for line in samples.stdout.splitlines()]
    assert dead == [line["expect"]["outcome"] == "dlq" for line in load_samples("alerts.json")]
    assert f"{len(dead)} messages: {sum(dead)} would be dead-lettered" in samples.stderr


def test_one_message_per_line_and_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "two.txt"
    path.write_bytes(b'{"source": "s", "external_id": "1", "type": "fire", "title": "t"}\n{bad\n')
    code, results = decode_json(capsys, "alerts.json", str(path), lines=True, time="1741944600000")
    assert code == EXIT_FAILURE
    assert [r["outcome"] for r in results] == ["alert", "dead_letter"]
    assert results[0]["intents"][0]["alert"]["received_at"] == "2025-03-14T09:30:00Z"
    assert results[1]["dead_letter"]["error_code"] == "not_json"

    # the whole file is one message unless --lines: this one is not JSON
    code, results = decode_json(capsys, "alerts.json", str(path))
    assert code == EXIT_FAILURE
    assert results[0]["dead_letter"]["error_code"] == "not_json"

    # an Axis event without --resources: unplaced, and the would-be alert is shown
    # for a falling edge too
    axis = load_samples("alerts.axis")[1]
    path.write_text(axis["value"], "utf-8")
    code, results = decode_json(
        capsys, "alerts.axis", str(path), key=axis["key"], time=axis["timestamp"]
    )
    assert code == EXIT_OK
    [got] = results
    assert got["outcome"] == "patch"
    assert got["axis_event"]["state"] is False
    assert got["rising_edge_alert"]["metadata"]["device_unregistered"] is True
    assert got["notes"]

    for bad in (
        args("alerts.nope", str(path)),
        args("alerts.json", str(tmp_path / "missing")),
        args("alerts.json", str(path), time="yesterday"),
        args("alerts.json", str(path), resources=str(path)),
    ):
        assert run_decode(fixture_settings(), bad) == EXIT_USAGE
        assert "eriop decode: " in capsys.readouterr().err
