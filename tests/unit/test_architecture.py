"""The architecture checks itself: import contracts, module sizes, the top level."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PRODUCT = ("pipeline", "agents", "schemas")
MAX_LINES = 300


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "BROKEN" not in done.stdout
    assert "Contracts: 5 kept, 0 broken." in done.stdout


@pytest.mark.parametrize("package", PRODUCT)
def test_no_product_module_is_over_300_lines(package: str) -> None:
    long = {
        str(p.relative_to(REPO)): n
        for p in (REPO / package).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these along a seam: {long}"


def test_the_top_level_is_the_one_the_design_names() -> None:
    for name in ("pipeline", "agents", "schemas", "eriop", "deploy", "tests", "docs", "scripts"):
        assert (REPO / name).is_dir(), name
    assert not (REPO / "src").exists()
    # the command line and its tools live in eriop, never inside the product
    tooling = ("cli", "bench", "devrun", "devstack", "simulate", "traffic", "watch", "dlqtool")
    found = [p.stem for p in (REPO / "pipeline").rglob("*.py") if p.stem.startswith(tooling)]
    assert not found


def test_every_pipeline_package_says_what_it_is_for() -> None:
    for init in (REPO / "pipeline").rglob("__init__.py"):
        if "migrations" in init.parts:
            continue
        text = init.read_text().lstrip()
        assert text.startswith('"""'), f"{init.relative_to(REPO)} has no docstring"


def test_every_exception_of_ours_is_in_the_error_tree() -> None:
    import importlib
    import inspect
    import pkgutil

    from pipeline.errors import EriopError

    outside: list[str] = []
    for top in ("pipeline", "agents", "eriop"):
        package = importlib.import_module(top)
        for info in pkgutil.walk_packages(package.__path__, f"{top}."):
            module = importlib.import_module(info.name)
            for name, obj in vars(module).items():
                if (
                    inspect.isclass(obj)
                    and obj.__module__ == module.__name__
                    and issubclass(obj, BaseException)
                    and not issubclass(obj, EriopError)
                ):
                    outside.append(f"{module.__name__}.{name}")
    assert not outside, "derive these from pipeline.errors.EriopError"
