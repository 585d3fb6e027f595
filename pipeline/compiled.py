"""Which of the volume path's modules run compiled.

``setup.py`` compiles the modules listed in pyproject.toml (``[tool.eriop]
compiled``) with Cython and records the hash of each source it compiled in
``pipeline/_compiled.json``. An extension shadows its ``.py`` on import, so a
source edited after the build would silently not run; the finder installed
here loads the source instead whenever it no longer matches what was compiled,
and always with ``ERIOP_PURE_PYTHON=1``. ``scripts/setup.sh`` rebuilds.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Sequence
from functools import cache
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Final

from pipeline.errors import StaleExtensionWarning

_HERE: Final = Path(__file__).parent
_MANIFEST: Final = _HERE / "_compiled.json"


def pure_python() -> bool:
    """True when ``ERIOP_PURE_PYTHON`` asks for every module as Python source."""
    return os.environ.get("ERIOP_PURE_PYTHON", "") not in ("", "0")


@cache
def manifest() -> dict[str, str]:
    """Module name → SHA-256 of the source it was compiled from (empty when none was)."""
    try:
        data: dict[str, str] = json.loads(_MANIFEST.read_text())
    except (OSError, ValueError):
        return {}
    return data


def _source_of(name: str) -> Path:
    """A module's Python source, or its Cython source where it has no Python one."""
    path = (_HERE.parent / name.replace(".", "/")).with_suffix(".py")
    return path if path.is_file() else path.with_suffix(".pyx")


def _digest(path: Path) -> str:
    """SHA-256 of a source; a Cython source's covers the .pxd files it may cimport
    (setup.py computes the same)."""
    h = hashlib.sha256(path.read_bytes())
    if path.suffix == ".pyx":
        for pxd in sorted(_HERE.glob("*.pxd")):
            h.update(pxd.read_bytes())
    return h.hexdigest()


class _FreshExtensions:
    """A meta path finder for ``pipeline.*``: an extension module is loaded only
    while its source is the one it was compiled from; otherwise the source is."""

    def find_spec(
        self,
        name: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if not name.startswith("pipeline."):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
            return spec
        assert spec.origin is not None
        source = Path(spec.origin).with_name(name.rpartition(".")[2] + ".py")
        if source.is_file():
            if not pure_python() and _fresh(name, source, "running the source"):
                return spec
            return importlib.util.spec_from_file_location(name, source)
        # built from Cython source, with no Python to fall back on: stale, or
        # with ERIOP_PURE_PYTHON=1, it is not importable, and the module that
        # uses it does without (pipeline.sinks.postgres.copy_binary)
        source = source.with_suffix(".pyx")
        if not source.is_file():
            return spec
        if pure_python():
            raise ImportError(f"{name}: not loaded with ERIOP_PURE_PYTHON", name=name)
        if _fresh(name, source, "not loading it"):
            return spec
        raise ImportError(f"{name}: compiled from another source", name=name)


def _fresh(name: str, source: Path, instead: str) -> bool:
    """Whether ``name`` was compiled from ``source`` as it is; warns when not."""
    if manifest().get(name) == _digest(source):
        return True
    warnings.warn(
        f"{name}: the source changed after it was compiled; {instead} "
        "(scripts/setup.sh compiles it again)",
        StaleExtensionWarning,
        stacklevel=3,
    )
    return False


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _FreshExtensions) for f in sys.meta_path):
        sys.meta_path.insert(0, _FreshExtensions())


def _changed() -> list[str]:
    """The compiled modules whose source is no longer what was compiled."""
    return [
        name
        for name, digest in manifest().items()
        if not (source := _source_of(name)).is_file() or _digest(source) != digest
    ]


def fresh() -> bool:
    """Whether the build compiled modules and every one is still its source
    (what ``scripts/setup.sh`` checks before it compiles again)."""
    return bool(manifest()) and not _changed()


def describe() -> str:
    """How the volume path runs, for logs and benchmark reports."""
    if pure_python():
        return "as Python (ERIOP_PURE_PYTHON)"
    built = manifest()
    if not built:
        return "as Python (not compiled)"
    changed = _changed()
    text = f"compiled ({len(built) - len(changed)} modules)"
    return text + (f"; {len(changed)} changed since, run as Python" if changed else "")


def loaded() -> dict[str, bool]:
    """Each module the build compiled that is imported now: whether it runs compiled."""
    out = {}
    for name in manifest():
        spec = getattr(sys.modules.get(name), "__spec__", None)
        if spec is not None:
            out[name] = isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)
    return out
