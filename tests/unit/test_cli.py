"""The command line itself: every subcommand explains itself, and the exit codes
are the documented ones."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from eriop.cli import build_parser, main
from pipeline.errors import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    BrokerUnavailable,
    ConfigError,
    EriopError,
)

CODES = (EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_CONFIG)
ROOT = Path(__file__).resolve().parents[2]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    out: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out[name] = sub
                out |= {f"{name} {k}": v for k, v in _subparsers(sub).items()}
    return out


def test_every_subcommand_has_a_description() -> None:
    subs = _subparsers(build_parser())
    assert {"migrate", "worker", "decode", "status", "dlq list", "dlq replay"} <= set(subs)
    missing = [name for name, p in subs.items() if not (p.description or "").strip()]
    assert missing == []


def test_exit_codes_are_distinct_and_documented() -> None:
    assert len(set(CODES)) == len(CODES)
    assert (EXIT_UNAVAILABLE, EXIT_CONFIG) == (69, 78)
    assert BrokerUnavailable("x").exit_code == EXIT_UNAVAILABLE
    assert ConfigError("x").exit_code == EXIT_CONFIG
    assert EriopError("x").exit_code == EXIT_FAILURE
    epilog = build_parser().epilog or ""
    ops = (ROOT / "docs" / "operations.md").read_text("utf-8")
    section = ops.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    for code in CODES:
        assert f"\n  {code:<3} " in epilog, code
        assert f"| {code} |" in section, code


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["decode"])  # TOPIC missing
    assert info.value.code == EXIT_USAGE
    assert "usage: eriop decode" in capsys.readouterr().err


def test_an_error_a_subcommand_does_not_report_gets_its_own_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fails(args: argparse.Namespace, settings: object) -> int:
        raise BrokerUnavailable("Kafka at k:9092 unreachable")

    monkeypatch.setattr("eriop.cli.cmd_status", fails)
    assert main(["status"]) == EXIT_UNAVAILABLE
    assert "eriop status: Kafka at k:9092 unreachable" in capsys.readouterr().err
