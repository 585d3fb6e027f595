"""The volume path's compiled modules (setup.py, pipeline.compiled).

The suite runs against the compiled build, which is what production runs; the
volume path's unit tests also run once as plain Python, so both builds are held
to the same results.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import pytest

import pipeline.decoders
from pipeline import compiled
from pipeline.environment import unknown_variables
from pipeline.errors import StaleExtensionWarning

ROOT = Path(__file__).resolve().parents[2]
LISTED: list[str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["eriop"][
    "compiled"
]
#: the unit tests of the compiled modules, run again as plain Python
VOLUME_PATH_TESTS = [
    "tests/unit/test_gps_decoder.py",
    "tests/unit/test_telemetry_decoder.py",
    "tests/unit/test_decoder_properties.py",
    "tests/unit/test_plausibility.py",
    "tests/unit/test_geofence_tracker.py",
    "tests/unit/test_hot_path_helpers.py",
    "tests/unit/test_isolation_logic.py",
    "tests/unit/test_live_state.py",
    "tests/unit/test_batch_consumer.py",
]
JSON_FAST = "pipeline.decoders.json_fast"


def _is_extension(spec: importlib.machinery.ModuleSpec | None) -> bool:
    return spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)


def test_every_listed_module_runs_compiled() -> None:
    """Compiled, as built by scripts/setup.sh; every one as Python source when
    ERIOP_PURE_PYTHON asks for that."""
    pure = compiled.pure_python()
    if not pure:
        assert compiled.fresh(), "scripts/setup.sh compiles the volume path's modules"
        assert set(compiled.manifest()) == set(LISTED)
    for name in LISTED:
        if pure and compiled._source_of(name).suffix == ".pyx":
            with pytest.raises(ImportError):
                importlib.import_module(name)
            continue
        module = importlib.import_module(name)
        assert _is_extension(module.__spec__) is not pure, f"{name}: {module.__file__}"


def test_a_changed_source_runs_instead_of_its_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ERIOP_PURE_PYTHON", raising=False)
    finder = compiled._FreshExtensions()
    path = pipeline.decoders.__path__
    built = dict(compiled.manifest())
    if JSON_FAST not in built:
        pytest.fail("json_fast was not compiled: scripts/setup.sh compiles it")

    monkeypatch.setattr(compiled, "manifest", lambda: built)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _is_extension(finder.find_spec(JSON_FAST, path))

    monkeypatch.setattr(compiled, "manifest", lambda: {**built, JSON_FAST: "0" * 64})
    with pytest.warns(StaleExtensionWarning, match="json_fast: the source changed"):
        spec = finder.find_spec(JSON_FAST, path)
    assert spec is not None
    assert isinstance(spec.loader, importlib.machinery.SourceFileLoader)
    assert spec.origin is not None
    assert spec.origin.endswith("json_fast.py")
    assert not compiled.fresh()

    # a module missing from the record is not trusted either
    monkeypatch.setattr(compiled, "manifest", lambda: {})
    with pytest.warns(StaleExtensionWarning):
        assert not _is_extension(finder.find_spec(JSON_FAST, path))


def test_pure_python_asks_for_every_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERIOP_PURE_PYTHON", "1")
    finder = compiled._FreshExtensions()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec = finder.find_spec(JSON_FAST, pipeline.decoders.__path__)
    assert spec is not None
    assert isinstance(spec.loader, importlib.machinery.SourceFileLoader)
    # other packages are none of its business
    assert finder.find_spec("json", None) is None


def test_the_worker_takes_the_variable_for_what_it_is() -> None:
    assert unknown_variables({"ERIOP_PURE_PYTHON": "1"}) == []


def test_the_volume_path_unit_tests_pass_as_python() -> None:
    env = {**os.environ, "ERIOP_PURE_PYTHON": "1"}
    probe = subprocess.run(
        [sys.executable, "-c", "import pipeline.flows.bulk as m; print(m.__file__)"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert probe.stdout.strip().endswith("bulk.py")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *VOLUME_PATH_TESTS],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout
    assert "failed" not in run.stdout


COPY_BINARY = "pipeline.sinks.postgres._copy_binary"


def test_an_extension_of_cython_source_is_loaded_only_while_fresh(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It has no Python source to run instead: stale, or with ERIOP_PURE_PYTHON,
    it is not importable, and copy_binary reports no compiled encoder."""
    import pipeline.sinks.postgres as package
    from pipeline.sinks.postgres import copy_binary

    monkeypatch.delenv("ERIOP_PURE_PYTHON", raising=False)
    finder = compiled._FreshExtensions()
    built = dict(compiled.manifest())
    assert COPY_BINARY in built, "scripts/setup.sh compiles it"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _is_extension(finder.find_spec(COPY_BINARY, package.__path__))

    monkeypatch.setattr(compiled, "manifest", lambda: {**built, COPY_BINARY: "0" * 64})
    with (
        pytest.warns(
            StaleExtensionWarning, match="the source changed after it was compiled; not loading it"
        ),
        pytest.raises(ImportError, match="compiled from another source"),
    ):
        finder.find_spec(COPY_BINARY, package.__path__)

    monkeypatch.setattr(compiled, "manifest", lambda: built)
    monkeypatch.setenv("ERIOP_PURE_PYTHON", "1")
    with pytest.raises(ImportError, match="ERIOP_PURE_PYTHON"):
        finder.find_spec(COPY_BINARY, package.__path__)
    assert copy_binary.compiled_encoder() is None
    env = {**os.environ, "ERIOP_PURE_PYTHON": "1"}
    probe = subprocess.run(
        [sys.executable, "-c", "import pipeline.sinks.postgres.timeseries as m; print(m.ENCODER)"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert probe.stdout.strip() == "None"


def test_a_cython_sources_digest_covers_the_shared_pxd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a change to pipeline/*.pxd makes every extension built from Cython source stale
    (tmp_path / "_shared.pxd").write_text("cdef int a\n")
    pyx, py = tmp_path / "m.pyx", tmp_path / "m.py"
    pyx.write_text("x = 1\n")
    py.write_text("x = 1\n")
    monkeypatch.setattr(compiled, "_HERE", tmp_path)
    before, python_before = compiled._digest(pyx), compiled._digest(py)
    (tmp_path / "_shared.pxd").write_text("cdef int b\n")
    assert compiled._digest(pyx) != before
    assert compiled._digest(py) == python_before
