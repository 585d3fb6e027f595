"""Strict JSON for the volume topics, at orjson speed.

:func:`loads` returns exactly what :func:`pipeline.decoders.envelope.parse_json` returns
and raises exactly what it raises (docs/formats.md 0.1: duplicate keys and
nesting deeper than 32 are ``not_json``, NaN/Infinity ``invalid_value``).
orjson alone is not strict enough: it keeps the last of duplicate keys, accepts
nesting up to 1024 and turns integers beyond 64 bits into floats. Whenever any
of those could apply, or orjson refuses the text, the strict parser decides.

The checks count bytes of the raw text, never walk it in Python. Each count can
only err on the high side (a string may hold a ``{``, a run of digits or a
``":``), and a high count sends the text to the strict parser, so a count that
passes proves the property.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from pipeline.decoders.envelope import MAX_JSON_DEPTH, parse_json

# An integer of 20 digits or more can exceed the 64 bits orjson keeps exact;
# mapping every digit to "0" lets one substring search find such a run.
_DIGITS_TO_ZERO: Final = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN: Final = b"0" * 20
#: JSON's insignificant whitespace, deleted in the same pass
_WHITESPACE: Final = b" \t\n\r"
#: a string's closing quote directly before a colon: every member's key ends so
_KEY_END: Final = b'":'
#: ``int in bytes`` is one memchr; ``bytes in bytes`` and ``find`` pay several
#: times that in setup on a message-sized text
_OPEN_ARRAY: Final = ord("[")


def loads(text: str, data: bytes | None = None) -> Any:
    """Parse ``text`` as strict JSON; identical in result and errors to ``parse_json``.

    ``data`` is ``text`` as UTF-8 when the caller has it (a leading BOM may
    differ: it holds none of the bytes counted).
    """
    if "\\" in text:
        # escapes can hide a duplicate key or a NUL: the strict parser decides
        return parse_json(text)
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return parse_json(text)
    raw = text.encode() if data is None else data
    # With the whitespace gone every key is directly followed by ":", so the
    # number of '":' is at least the number of keys in the text; orjson keeps
    # one member per distinct key, so equal counts mean no key repeats.
    squeezed = raw.translate(_DIGITS_TO_ZERO, _WHITESPACE)
    if squeezed.find(_LONG_RUN) != -1:
        return parse_json(text)
    keys = squeezed.count(_KEY_END)
    t = type(obj)
    # One flat object: every "{" and "[" in the text is accounted for. (Two
    # searches, not counts: a count walks the text byte by byte.)
    if t is dict and _OPEN_ARRAY not in squeezed and squeezed.find(b"{", 1) == -1:
        return obj if keys == len(obj) else parse_json(text)
    objects = squeezed.count(b"{")
    arrays = squeezed.count(b"[")
    # The usual telemetry pack, one array of flat objects: two levels, counted in C.
    if t is list and arrays == 1 and objects == len(obj) and set(map(type, obj)) == {dict}:
        return obj if keys == sum(map(len, obj)) else parse_json(text)
    if objects + arrays > MAX_JSON_DEPTH and _depth(obj) > MAX_JSON_DEPTH:
        return parse_json(text)
    if keys != _members(obj):
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
