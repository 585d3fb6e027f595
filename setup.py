"""Builds the volume path's modules as C extensions with Cython, when it can.

The modules listed under ``[tool.eriop] compiled`` in pyproject.toml are plain
Python; Cython compiles them unchanged (annotations are not used as C types, so
they keep Python's semantics) and each extension sits beside its source.
``pipeline/_compiled.json`` records the hash of every source compiled, and
:mod:`pipeline.compiled` loads an extension only while its source is unchanged.
Without Cython or a C compiler, or with ``ERIOP_PURE_PYTHON=1``, the package is
installed as plain Python and runs the same, only slower.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent
MANIFEST = Path("pipeline", "_compiled.json")


def _listed() -> list[str]:
    with open(HERE / "pyproject.toml", "rb") as f:
        names: list[str] = tomllib.load(f)["tool"]["eriop"]["compiled"]
    return names


def _source(name: str) -> Path:
    """A module's Python source, or its Cython source where it has no Python one."""
    path = Path(*name.split(".")).with_suffix(".py")
    return path if (HERE / path).is_file() else path.with_suffix(".pyx")


def _digest(path: Path) -> str:
    """SHA-256 of a source; a Cython source's covers the .pxd files it may cimport
    (pipeline.compiled computes the same)."""
    h = hashlib.sha256(path.read_bytes())
    if path.suffix == ".pyx":
        for pxd in sorted((HERE / "pipeline").glob("*.pxd")):
            h.update(pxd.read_bytes())
    return h.hexdigest()


def _extensions() -> list[Extension]:
    if os.environ.get("ERIOP_PURE_PYTHON", "") not in ("", "0"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        return []
    modules = [
        Extension(
            name,
            [str(_source(name))],
            optional=True,  # no compiler: that module stays Python
            # no fused multiply-add: the C twins round as Python does, step by step
            extra_compile_args=["-O2", "-g0", "-ffp-contract=off"],
        )
        for name in _listed()
    ]
    return list(
        cythonize(
            modules,
            language_level=3,
            quiet=True,
            force=True,  # C from this very source, whatever the files' times say
            nthreads=os.cpu_count() or 1,
            compiler_directives={"annotation_typing": False, "binding": True},
        )
    )


class BuildWithManifest(build_ext):
    """build_ext that also writes the hash of each source it compiled."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if not self.parallel:
            self.parallel = os.cpu_count() or 1  # one C compiler per core

    def run(self) -> None:
        self._built: list[str] = []
        super().run()
        built = {name: _digest(HERE / _source(name)) for name in self._built}
        root = HERE if self.inplace else Path(self.build_lib)
        (root / MANIFEST).write_text(json.dumps(built, indent=1, sort_keys=True) + "\n")

    def build_extension(self, ext: Extension) -> None:
        # an optional extension that fails raises here and is left out
        super().build_extension(ext)
        self._built.append(ext.name)


setup(ext_modules=_extensions(), cmdclass={"build_ext": BuildWithManifest})
