"""The environment as :class:`~pipeline.settings.Settings` reads it.

Every setting is one variable: ``ERIOP_`` plus its path in upper case, nested
with ``__`` (``kafka.partitions`` is ``ERIOP_KAFKA__PARTITIONS``); a nested
group may also be given whole as JSON (``ERIOP_KAFKA='{"partitions": 8}'``).
Secrets may come from files instead: ``/run/secrets/eriop_database_url``
(the variable's name in lower case; compose ``secrets:`` mount them there).

:func:`load_settings` refuses what a typo would otherwise hide: an ``ERIOP_*``
variable that names no setting stops the start with the closest valid name,
and a bad value is reported under the variable the operator set, not the
model's field path. :func:`reference` renders the table of
docs/configuration.md from the model itself, so the two cannot drift apart.
"""

from __future__ import annotations

import difflib
import inspect
import json
import logging
import re
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import pydantic
from pydantic import BaseModel, SecretStr

from pipeline.errors import ConfigError
from pipeline.settings import Settings

PREFIX: Final = "ERIOP_"
#: variables of the build, scripts, tests and compose files around the product, not settings
TOOL_VARIABLES: Final = frozenset(
    {
        "ERIOP_PURE_PYTHON",  # pipeline.compiled: the volume path as Python source
        "ERIOP_BACKUP_DIR",
        "ERIOP_TEST_PG",
        "ERIOP_DEV_BROKER_BIN",
        "ERIOP_SOAK",
        "ERIOP_SOAK_SECONDS",
        "ERIOP_FAULT_SEED",
        "ERIOP_IMAGE",
    }
)
#: settings that no longer exist, with why: named in a warning, never refused,
#: so an upgrade does not stop a worker whose environment still sets one
RETIRED: Final = {
    "ERIOP_BATCH__ALERT_LINGER_MS": (
        "the alert agent hands each fetch over as it arrives; a batch forms from "
        "what arrives while the one before is handled"
    ),
}


@dataclass(frozen=True, slots=True)
class Variable:
    """One environment variable and the setting it sets."""

    name: str
    path: str
    annotation: str
    default: str
    doc: str
    secret: bool
    #: a group or a mapping: deeper names under it are its own business
    open_below: bool


_FIELD = re.compile(r"^    (\w+)\s*:")
_DOC = re.compile(r"^    #:\s?(.*)$")


def _field_docs(model: type[BaseModel]) -> dict[str, str]:
    """The ``#:`` comment lines right above each field of ``model``'s class body."""
    try:
        source = inspect.getsource(model)
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
    pending: list[str] = []
    for line in source.splitlines():
        if doc := _DOC.match(line):
            pending.append(doc.group(1).strip())
        elif field := _FIELD.match(line):
            if pending:
                docs[field.group(1)] = " ".join(pending)
            pending = []
        elif line.strip():
            pending = []
    return docs


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    out: list[type[BaseModel]] = []
    for arg in (annotation, *typing.get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            out.append(arg)
    return out


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " / ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if annotation is type(None):
        return "none"
    if origin is not None:
        inner = ", ".join("…" if a is Ellipsis else _type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    return getattr(annotation, "__name__", str(annotation))


def _default_text(field: pydantic.fields.FieldInfo) -> str:
    if field.is_required():
        return "(required)"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, SecretStr):
        return value.get_secret_value()  # a default in the code, never an operator's secret
    if isinstance(value, BaseModel):
        return "(group)"
    if isinstance(value, tuple | list | dict):
        return json.dumps(value, default=str)
    if value is None:
        return "–"
    return str(value)


def _walk(model: type[BaseModel], path: str, prefix: str) -> Iterator[Variable]:
    docs = _field_docs(model)
    for field_name, field in model.model_fields.items():
        annotation = field.annotation
        sub_path = f"{path}.{field_name}" if path else field_name
        var = prefix + field_name.upper()
        models = _models_in(annotation)
        origin = typing.get_origin(annotation)
        is_mapping = origin in (dict, Mapping) or annotation is dict
        secret = "SecretStr" in str(annotation)
        doc = field.description or docs.get(field_name, "")
        if models and not is_mapping and origin not in (tuple, list):
            group_doc = doc or (inspect.getdoc(models[0]) or "").split("\n\n")[0]
            group_doc = " ".join(group_doc.split())
            yield Variable(var, sub_path, "JSON object", "(group)", group_doc, secret, True)
            yield from _walk(models[0], sub_path, var + "__")
            continue
        yield Variable(
            var,
            sub_path,
            _type_name(annotation),
            _default_text(field),
            doc,
            secret,
            is_mapping or bool(models),
        )


def variables(model: type[BaseModel] = Settings) -> list[Variable]:
    """Every variable of ``model``, groups included, in declaration order."""
    return list(_walk(model, "", PREFIX))


def unknown_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """``ERIOP_*`` names in ``environ`` that set nothing, with the closest valid name."""
    known = variables()
    names = {v.name for v in known}
    open_prefixes = tuple(v.name + "__" for v in known if v.open_below)
    out: list[tuple[str, str | None]] = []
    for raw in environ:
        upper = raw.upper()
        if not upper.startswith(PREFIX) or upper in names:
            continue
        if upper in TOOL_VARIABLES or upper in RETIRED or upper.startswith(open_prefixes):
            continue
        close = difflib.get_close_matches(upper, sorted(names), n=1, cutoff=0.6)
        out.append((raw, close[0] if close else None))
    return sorted(out)


def variable_of(loc: tuple[int | str, ...]) -> str:
    """The variable name of a pydantic error location (``("kafka", "partitions")``)."""
    return PREFIX + "__".join(str(p).upper() for p in loc if not isinstance(p, int))


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment, or a :class:`ConfigError` naming each variable."""
    import os

    env = os.environ if environ is None else environ
    for name in sorted(n for n in env if n.upper() in RETIRED):
        logging.getLogger(__name__).warning(
            "%s is no longer a setting and is ignored: %s", name, RETIRED[name.upper()]
        )
        if environ is None:
            os.environ.pop(name, None)  # the settings model reads the environment itself
    unknown = unknown_variables(env)
    if unknown:
        lines = [
            f"{name} is not a setting" + (f" (did you mean {hint}?)" if hint else "")
            for name, hint in unknown
        ]
        raise ConfigError("; ".join(lines) + ". See docs/configuration.md.")
    try:
        return Settings()
    except pydantic.ValidationError as exc:
        problems = [
            f"{variable_of(err['loc'])}: {err['msg']}" for err in exc.errors(include_input=False)
        ]
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


def effective(settings: Settings) -> list[tuple[str, str]]:
    """(variable, value) of every leaf setting in force; secrets masked."""
    out: list[tuple[str, str]] = []
    for v in variables():
        if v.default == "(group)":
            continue
        value: Any = settings
        for part in v.path.split("."):
            value = getattr(value, part)
        if v.secret and value is not None:
            text = "**********"
        elif isinstance(value, BaseModel):
            text = value.model_dump_json()
        elif isinstance(value, tuple | list | dict):
            text = json.dumps(
                value,
                default=lambda o: o.model_dump(mode="json") if isinstance(o, BaseModel) else str(o),
            )
        else:
            text = "" if value is None else str(value)
        out.append((v.name, text))
    return out


_HEADER = """# Configuration

Every setting of ERIOP ingest, generated from the settings model (`eriop config
--reference`; a test fails when this file and the model differ). Variables have the
prefix `ERIOP_` and nest with `__`; a group may also be given whole as JSON
(`ERIOP_KAFKA='{"partitions": 8}'`). Secrets may come from files named like the variable
in lower case under `/run/secrets` (`/run/secrets/eriop_database_url`). An `ERIOP_*`
variable that names no setting stops the start with the closest valid name.
`eriop config` prints the settings in force, secrets masked.

"""


def reference() -> str:
    """docs/configuration.md: every setting with its type, default and meaning."""
    rows = ["| variable | type | default | meaning |", "| --- | --- | --- | --- |"]
    for v in variables():
        meaning = (v.doc or "").replace("``", "`")
        if meaning and not meaning.endswith("."):
            meaning += "."
        if v.secret:
            meaning += " Secret: never printed; may come from a file."
        cells = [f"`{v.name}`", v.annotation, f"`{v.default}`", meaning]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return _HEADER + "\n".join(rows) + "\n"
