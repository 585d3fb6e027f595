"""``eriop bench --profile``: py-spy's raw stacks summed into own and inclusive shares,
and how py-spy is run."""

from __future__ import annotations

from pathlib import Path

import pytest

from eriop.bench.profile import record_argv, summarize
from eriop.cli import main


def test_own_and_inclusive_shares_of_the_samples(tmp_path: Path) -> None:
    raw = tmp_path / "gps-0.raw"
    raw.write_text(
        "run (pipeline/flows/bulk.py:10);decode (pipeline/decoders/gps/avl.py:30) 30\n"
        "run (pipeline/flows/bulk.py:10);decode (pipeline/decoders/gps/avl.py:31) 10\n"
        "run (pipeline/flows/bulk.py:12);copy (asyncpg/connection.py:99) 60\n"
        "not a sample line\n",
        encoding="utf-8",
    )
    text = summarize([raw, tmp_path / "missing.raw"])
    lines = text.splitlines()
    assert lines[0] == "100 samples at 200 Hz over 1 process(es)"
    own = lines[lines.index("own %  function") + 2 :][:2]
    # line numbers are folded together, paths shortened to their last two parts
    assert own == [" 60.0  copy (asyncpg/connection.py)", " 40.0  decode (gps/avl.py)"]
    inclusive = lines[lines.index("incl % function") + 2 :]
    assert inclusive[0] == "100.0  run (flows/bulk.py)"


def test_no_samples_says_so(tmp_path: Path) -> None:
    assert summarize([tmp_path / "none.raw"]) == "no samples\n"


def test_native_frames_are_sampled_only_when_asked(tmp_path: Path) -> None:
    plain = record_argv("py-spy", 42, tmp_path / "gps-0.raw", native=False)
    native = record_argv("py-spy", 42, tmp_path / "gps-0.raw", native=True)
    assert "--nonblocking" in plain
    assert "--native" not in plain
    assert "--native" in native
    assert "--nonblocking" not in native
    assert native[native.index("--pid") + 1] == "42"


def test_native_goes_with_profile(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--native"]) == 2
    assert "--native goes with --profile" in capsys.readouterr().err
