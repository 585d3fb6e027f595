"""telemetry.raw decoding (docs/formats.md 0, 5 and 7)."""

from __future__ import annotations

import base64
import json
import math
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.decode import iso_utc, parse_json
from pipeline.decoders import json_fast
from pipeline.decoders.telemetry import decode_telemetry
from pipeline.errors import InputError
from pipeline.settings import TelemetrySettings
from schemas.canonical import TelemetryRow
from schemas.intents import Discard, StoreTelemetry
from schemas.records import RawRecord

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "samples"
FIXTURES = json.loads((SAMPLES / "fixtures.json").read_text())
NS_DEVICE = uuid.UUID(FIXTURES["config"]["device_namespace"])

NOW = datetime(2025, 3, 14, 10, 0, 0, tzinfo=UTC)
NOW_S = int(NOW.timestamp())
SETTINGS = TelemetrySettings()
IMEI = "urn:dev:imei:356938035643809"


def ms(dt: datetime) -> int:
    return round(dt.timestamp() * 1000)


def raw(
    value: bytes | None,
    *,
    key: bytes | None = b"dev-1",
    at: datetime = NOW,
    headers: tuple[tuple[str, bytes], ...] = (),
) -> RawRecord:
    return RawRecord("telemetry.raw", 0, 7, ms(at), key, value, headers)


def decode(
    payload: Any,
    *,
    now: datetime = NOW,
    config: TelemetrySettings = SETTINGS,
    **kw: Any,
) -> StoreTelemetry:
    value = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    out = decode_telemetry(raw(value, **kw), config, now)
    assert isinstance(out, StoreTelemetry)
    return out


def rows(payload: Any, **kw: Any) -> list[TelemetryRow]:
    return list(decode(payload, **kw).rows)


def fails(payload: Any, **kw: Any) -> tuple[str, str]:
    with pytest.raises(InputError) as info:
        decode(payload, **kw)
    return info.value.stage, info.value.error_code


def uuid5(ref: str) -> uuid.UUID:
    return uuid.uuid5(NS_DEVICE, unicodedata.normalize("NFC", ref).strip())


def simple(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "device_id": "SCBA-0457",
        "device_type": "scba",
        "time": "2025-03-14T09:59:00Z",
        "metric": "cylinder_pressure",
        "value": 212.5,
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


# --- the samples of docs/formats.md 5.5 -----------------------------------------


def _sample_lines(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (SAMPLES / name).read_text().splitlines() if line]


def _record(line: dict[str, Any]) -> tuple[RawRecord, datetime]:
    at = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
    value = (
        line["value"].encode() if "value" in line else base64.b64decode(line["value_b64"])
    )
    key = None if line.get("key") is None else line["key"].encode()
    headers = line.get("headers") or {}
    items = headers.items() if isinstance(headers, dict) else headers
    hdrs = tuple((str(k), v.encode() if isinstance(v, str) else bytes(v)) for k, v in items)
    return RawRecord(line["topic"], 0, 0, ms(at), key, value, hdrs), at


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_row(row: TelemetryRow, want: dict[str, Any]) -> None:
    for name, expected in want.items():
        got = getattr(row, name)
        if name == "time":
            assert got == _instant(expected)
        elif name == "device_id":
            assert str(got) == expected
        elif name == "location":
            if expected is None:
                assert got is None
            else:
                assert got is not None
                assert got.lon == pytest.approx(expected["lon"], abs=1e-6)
                assert got.lat == pytest.approx(expected["lat"], abs=1e-6)
        elif name == "metadata":
            for key, value in expected.items():
                assert got[key] == value, key
        elif isinstance(expected, float | int) and not isinstance(expected, bool):
            assert got == pytest.approx(expected, abs=1e-9), name
        else:
            assert got == expected, name


SAMPLE_LINES = _sample_lines("telemetry.raw.jsonl")


@pytest.mark.parametrize("line", SAMPLE_LINES, ids=[str(i) for i in range(len(SAMPLE_LINES))])
def test_sample_lines(line: dict[str, Any]) -> None:
    record, at = _record(line)
    expect = line["expect"]
    if expect["outcome"] == "dlq":
        with pytest.raises(InputError) as info:
            decode_telemetry(record, SETTINGS, at)
        assert (info.value.stage, info.value.error_code) == (expect["stage"], expect["error_code"])
        return
    out = decode_telemetry(record, SETTINGS, at)
    if expect["outcome"] == "discard":
        assert isinstance(out, Discard)
        assert out.reason == expect["reason"]
        return
    assert expect["outcome"] == "telemetry"
    assert isinstance(out, StoreTelemetry)
    assert len(out.rows) == len(expect["rows"])
    for row, want in zip(out.rows, expect["rows"], strict=True):
        assert_row(row, want)
        assert row.metadata["received_at"] == iso_utc(record.kafka_time)


def test_sample_device_ids_follow_ns_device() -> None:
    assert uuid5(IMEI) == uuid.UUID("1e35c031-2f17-5e63-b06f-ac081b312219")
    assert uuid5("SCBA-0457") == uuid.UUID("b27e5b3b-7fe4-584a-91ac-a93664d4501a")


# --- envelope, text and JSON (section 0.1) ----------------------------------------


def test_tombstone_is_skipped() -> None:
    out = decode_telemetry(raw(None), SETTINGS, NOW)
    assert out == Discard("tombstone")


@pytest.mark.parametrize(
    ("value", "stage", "code"),
    [
        (b"", "decode", "unknown_format"),
        (b"\xff\xfe[]", "decode", "not_utf8"),
        (b"[{", "decode", "not_json"),
        (b'{"device_id":"a","device_id":"b"}', "decode", "not_json"),
        (b'[{"bn":"a:","n":"x","v":1,"n":"y"}]', "decode", "not_json"),
        (b"[" * 33 + b"]" * 33, "decode", "not_json"),
        (b'[{"bn":"a:","n":"x","v":NaN}]', "validate", "invalid_value"),
        (b'[{"bn":"a:","n":"x","v":Infinity}]', "validate", "invalid_value"),
        (b'[{"bn":"a:","n":"x","v":1e400}]', "validate", "invalid_value"),
        (b"42", "decode", "unknown_format"),
        (b'"text"', "decode", "unknown_format"),
        (b"[]", "decode", "unknown_format"),
        (b"[1, 2]", "decode", "unknown_format"),
        (b'{"metric":"x","value":1}', "decode", "unknown_format"),
        (b'[{"foo":1}]', "decode", "unknown_format"),
    ],
)
def test_envelope_and_parse_errors(value: bytes, stage: str, code: str) -> None:
    assert fails(value) == (stage, code)


def test_oversize_uses_max_bytes() -> None:
    value = json.dumps([{"bn": "d:", "n": "x", "v": 1}]).encode()
    record = raw(value)
    with pytest.raises(InputError) as info:
        decode_telemetry(record, SETTINGS, NOW, max_bytes=len(value) - 1)
    assert info.value.error_code == "oversize"
    assert decode_telemetry(record, SETTINGS, NOW, max_bytes=len(value)) != Discard("tombstone")


def test_leading_bom_is_dropped() -> None:
    value = "\ufeff" + json.dumps([{"bn": "d:", "bt": NOW_S, "n": "x", "v": 1}])
    assert len(rows(value.encode())) == 1


def test_nesting_of_32_is_accepted() -> None:
    deep: Any = 1
    for _ in range(30):
        deep = [deep]
    out = rows([simple(metadata={"deep": deep})])
    assert out[0].metadata["deep"] == deep


@pytest.mark.parametrize(
    "payload",
    [
        [{"bn": "d:", "bt": NOW_S, "n": "x", "vs": "a\u0000b"}],
        [{"bn": "d:", "bt": NOW_S, "n": "x", "v": 1, "note": "\u0000"}],
        simple(text="ok\u0000", value=...),
        simple(metadata={"k\u0000": 1}),
    ],
)
def test_nul_anywhere_is_rejected(payload: Any) -> None:
    assert fails(payload) == ("validate", "nul_in_text")


# --- strict JSON fast path ---------------------------------------------------------


def _strict(text: str) -> tuple[str, Any]:
    try:
        return "ok", parse_json(text)
    except InputError as exc:
        return exc.error_code, None


def _fast(text: str) -> tuple[str, Any]:
    try:
        return "ok", json_fast.loads(text)
    except InputError as exc:
        return exc.error_code, None


@pytest.mark.parametrize(
    "text",
    [
        '{"a":1,"a":2}',
        '{"a":{"b":1,"b":1}}',
        '[{"a":1},{"a":1,"a":1}]',
        '{"a" : 1 , "a" : 2}',
        '{"a":"x:y","b":":"}',
        '{"a":"\\u003a","a":1}',
        '{"a":"\\"","b":1}',
        "[" * 32 + "]" * 32,
        "[" * 33 + "]" * 33,
        '{"a":' * 32 + "1" + "}" * 32,
        '{"a":' * 33 + "1" + "}" * 33,
        "[18446744073709551615]",
        "[18446744073709551616]",
        "[-123456789012345678901234567890]",
        '["12345678901234567890123"]',
        '"\\ud800"',
        "[1e400]",
        "[NaN]",
        "[-Infinity]",
        "[1,]",
        '{"a":1}x',
        "[true,false,null,-0,0.5,1E3]",
    ],
)
def test_fast_json_matches_strict_parser(text: str) -> None:
    fast, strict = _fast(text), _strict(text)
    assert fast == strict
    if fast[0] == "ok":
        assert json.dumps(fast[1]) == json.dumps(strict[1])


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**25), max_value=10**25)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.sampled_from('ab:{}[]",\\ \u00e9'), max_size=6),
    lambda children: st.lists(children, max_size=4)
    | st.lists(st.tuples(st.sampled_from(["a", "b", "c:", "{"]), children), max_size=4),
    max_leaves=20,
)


def _render(value: Any) -> str:
    """JSON text that may repeat keys (pairs lists render as objects)."""
    if isinstance(value, list) and value and all(isinstance(p, tuple) for p in value):
        return "{" + ",".join(json.dumps(k) + ":" + _render(v) for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_render(v) for v in value) + "]"
    return json.dumps(value)


@settings(max_examples=400, deadline=None)
@given(_json_values)
def test_fast_json_matches_strict_parser_on_generated_text(value: Any) -> None:
    text = _render(value)
    fast, strict = _fast(text), _strict(text)
    assert fast[0] == strict[0]
    if fast[0] == "ok":
        assert json.dumps(fast[1]) == json.dumps(strict[1])
