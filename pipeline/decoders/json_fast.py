"""Strict JSON for the volume topics, at orjson speed.

:func:`loads` returns exactly what :func:`pipeline.decoders.envelope.parse_json` returns
and raises exactly what it raises (docs/formats.md 0.1: duplicate keys and
nesting deeper than 32 are ``not_json``, NaN/Infinity ``invalid_value``).
orjson alone is not strict enough: it keeps the last of duplicate keys, accepts
nesting up to 1024 and turns integers beyond 64 bits into floats. Whenever any
of those could apply, or orjson refuses the text, the strict parser decides.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from pipeline.decoders.envelope import MAX_JSON_DEPTH, parse_json

# An integer of 20 digits or more can exceed the 64 bits orjson keeps exact;
# mapping every digit to "0" lets one substring search find such a run.
_DIGITS_TO_ZERO: Final = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN: Final = b"0" * 20


def loads(text: str) -> Any:
    """Parse ``text`` as strict JSON; identical in result and errors to ``parse_json``."""
    # With no backslash, a quote only ever delimits a string and string contents
    # are verbatim, so the text between strings is exactly the JSON structure.
    if "\\" in text:
        return parse_json(text)
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return parse_json(text)
    structure = "".join(text.split('"')[0::2])
    # The structure of valid JSON is ASCII, and bytes.translate is the fast one.
    if _LONG_RUN in structure.encode().translate(_DIGITS_TO_ZERO):
        return parse_json(text)
    objects = structure.count("{")
    arrays = structure.count("[")
    # Every member in the text has one structural colon; orjson drops repeated
    # keys, so fewer members than colons means a duplicate.
    colons = structure.count(":")
    t = type(obj)
    if t is dict and objects == 1 and arrays == 0:
        return obj if colons == len(obj) else parse_json(text)
    # The usual telemetry pack, one array of flat objects: two levels, counted in C.
    if t is list and arrays == 1 and objects == len(obj) and set(map(type, obj)) == {dict}:
        return obj if colons == sum(map(len, obj)) else parse_json(text)
    if objects + arrays > MAX_JSON_DEPTH and _depth(obj) > MAX_JSON_DEPTH:
        return parse_json(text)
    if colons != _members(obj):
        return parse_json(text)
    return obj


def _members(obj: Any) -> int:
    """Number of object members in the parsed value."""
    total = 0
    stack = [obj]
    while stack:
        v = stack.pop()
        if type(v) is dict:
            total += len(v)
            stack.extend(x for x in v.values() if type(x) is dict or type(x) is list)
        elif type(v) is list:
            stack.extend(x for x in v if type(x) is dict or type(x) is list)
    return total


def _depth(obj: Any) -> int:
    """Nesting depth of containers (a scalar is 0, ``[]`` is 1)."""
    best = 0
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        v, d = stack.pop()
        if type(v) is dict:
            items: Any = v.values()
        elif type(v) is list:
            items = v
        else:
            continue
        best = max(best, d)
        stack.extend((x, d + 1) for x in items if type(x) is dict or type(x) is list)
    return best
