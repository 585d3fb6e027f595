"""telemetry.raw decoding (docs/formats.md 0, 5 and 7)."""

from __future__ import annotations

import json
import math
import unicodedata
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.decoders import json_fast
from pipeline.decoders.envelope import iso_utc, parse_json
from pipeline.decoders.telemetry.decoder import decode_telemetry
from pipeline.errors import InputError
from pipeline.settings import TelemetrySettings
from schemas.canonical import TelemetryRow
from schemas.intents import Discard, StoreTelemetry
from schemas.records import RawRecord
from tests.samples import SampleRecord, assert_row, epoch_ms, load_fixtures, sample_records

FIXTURES = load_fixtures()
NS_DEVICE = uuid.UUID(FIXTURES["config"]["device_namespace"])

NOW = datetime(2025, 3, 14, 10, 0, 0, tzinfo=UTC)
NOW_S = int(NOW.timestamp())
SETTINGS = TelemetrySettings()
IMEI = "urn:dev:imei:356938035643809"


def raw(
    value: bytes | None,
    *,
    key: bytes | None = b"dev-1",
    at: datetime = NOW,
    headers: tuple[tuple[str, bytes], ...] = (),
) -> RawRecord:
    return RawRecord("telemetry.raw", 0, 7, epoch_ms(at), key, value, headers)


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


SAMPLE_RECORDS = sample_records("telemetry.raw")


@pytest.mark.parametrize("sample", SAMPLE_RECORDS, ids=[str(i) for i in range(len(SAMPLE_RECORDS))])
def test_sample_lines(sample: SampleRecord) -> None:
    record, at, expect, _ = sample
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
        assert_row(row, want, tol=1e-9)
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
    for _ in range(29):  # inside the pack array, the record and its metadata: 32 levels
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
        '{"a" :1, "a" :2, "x":":"}',
        '{"a"\n:1,\t"b"\r: " :"}',
        '[{"a" : 1}, {"b":2 , "b" :3}]',
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
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(st.tuples(st.sampled_from(["a", "b", "c:", "{"]), children), max_size=4)
    ),
    max_leaves=20,
)


def _render(value: Any) -> str:
    """JSON text that may repeat keys (pairs lists render as objects)."""
    if isinstance(value, list) and value and all(isinstance(p, tuple) for p in value):
        return "{" + ",".join(json.dumps(k) + ":" + _render(v) for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_render(v) for v in value) + "]"
    return json.dumps(value)


def _spaced(value: Any, gaps: Callable[[], str]) -> str:
    """Like ``_render``, with JSON whitespace drawn around every colon and comma."""
    if isinstance(value, list) and value and all(isinstance(p, tuple) for p in value):
        members = (json.dumps(k) + gaps() + ":" + gaps() + _spaced(v, gaps) for k, v in value)
        return "{" + gaps() + ("," + gaps()).join(members) + gaps() + "}"
    if isinstance(value, list):
        return "[" + gaps() + ("," + gaps()).join(_spaced(v, gaps) for v in value) + "]"
    return json.dumps(value)


@settings(max_examples=400, deadline=None)
@given(_json_values)
def test_fast_json_matches_strict_parser_on_generated_text(value: Any) -> None:
    text = _render(value)
    fast, strict = _fast(text), _strict(text)
    assert fast[0] == strict[0]
    if fast[0] == "ok":
        assert json.dumps(fast[1]) == json.dumps(strict[1])


@settings(max_examples=400, deadline=None)
@given(_json_values, st.data())
def test_fast_json_matches_strict_parser_with_whitespace(value: Any, data: st.DataObject) -> None:
    gap = st.text(alphabet=st.sampled_from(" \t\n\r"), max_size=2)
    text = _spaced(value, lambda: data.draw(gap))
    fast, strict = _fast(text), _strict(text)
    assert fast[0] == strict[0]
    if fast[0] == "ok":
        assert json.dumps(fast[1]) == json.dumps(strict[1])


# --- SenML (section 5.1) -----------------------------------------------------------


def test_base_fields_carry_forward_until_replaced() -> None:
    out = rows(
        [
            {"bn": "dev-a:", "bt": NOW_S, "bu": "Cel", "n": "t1", "v": 1},
            {"n": "t2", "v": 2},
            {"bn": "dev-b/", "bu": "%RH", "n": "h1", "t": -5, "v": 3},
            {"n": "h2", "u": "Cel", "v": 4},
        ]
    )
    assert [(r.metric_name, r.metadata.get("unit")) for r in out] == [
        ("t1", "Cel"),
        ("t2", "Cel"),
        ("h1", "%RH"),
        ("h2", "Cel"),
    ]
    assert [r.device_id for r in out] == [uuid5("dev-a")] * 2 + [uuid5("dev-b")] * 2
    assert [r.metadata["device_ref"] for r in out] == ["dev-a", "dev-a", "dev-b", "dev-b"]
    assert [r.time for r in out] == [NOW, NOW, NOW - timedelta(seconds=5), NOW]


def test_name_is_bn_plus_n_and_checked_as_a_whole() -> None:
    assert fails([{"bn": "dev 1:", "bt": NOW_S, "n": "x", "v": 1}]) == (
        "validate",
        "invalid_value",
    )
    assert fails([{"bn": "dev1:", "bt": NOW_S, "n": "a b", "v": 1}]) == (
        "validate",
        "invalid_value",
    )
    assert fails([{"bt": NOW_S, "n": "-x", "v": 1}]) == ("validate", "invalid_value")
    # "-x" is fine after a base name: the pattern applies to bn + n
    assert rows([{"bn": "dev1", "bt": NOW_S, "n": "-x", "v": 1}])[0].metric_name == "-x"


def test_device_drops_one_trailing_separator_only() -> None:
    out = rows([{"bn": "dev::", "bt": NOW_S, "n": "x", "v": 1}])
    assert out[0].metadata["device_ref"] == "dev:"
    assert out[0].device_id == uuid5("dev:")
    out = rows([{"bn": "urn:dev:x/", "bt": NOW_S, "n": "x", "v": 1}])
    assert out[0].metadata["device_ref"] == "urn:dev:x"


def test_device_is_kafka_key_without_bn() -> None:
    out = rows([{"bt": NOW_S, "n": "temp", "v": 1}], key=b"truck-17")
    assert out[0].device_id == uuid5("truck-17")
    assert out[0].metadata["device_ref"] == "truck-17"
    assert fails([{"bt": NOW_S, "n": "temp", "v": 1}], key=None) == ("validate", "missing_field")


def test_metric_name_falls_back_to_unit() -> None:
    out = rows([{"bn": "dev:", "bt": NOW_S, "u": "Cel", "v": 21}])
    assert out[0].metric_name == "Cel"
    assert fails([{"bn": "dev:", "bt": NOW_S, "v": 21}]) == ("validate", "missing_field")


def test_metric_name_limit() -> None:
    assert rows([{"bn": "d:", "bt": NOW_S, "n": "m" * 100, "v": 1}])[0].metric_name == "m" * 100
    assert fails([{"bn": "d:", "bt": NOW_S, "n": "m" * 101, "v": 1}]) == (
        "validate",
        "value_out_of_range",
    )


def test_relative_time_counts_from_the_kafka_timestamp() -> None:
    kafka = NOW - timedelta(minutes=3)
    out = rows(
        [
            {"bn": "d:", "n": "a", "v": 1},
            {"n": "b", "t": -30, "v": 1},
            {"n": "c", "t": 0.25, "v": 1},
        ],
        at=kafka,
    )
    assert [r.time for r in out] == [
        kafka,
        kafka - timedelta(seconds=30),
        kafka + timedelta(milliseconds=250),
    ]


def test_relative_and_absolute_split_at_2_pow_28() -> None:
    wide = TelemetrySettings(max_age_s=3e9, max_future_s=3e9)
    limit = 2**28
    out = rows(
        [{"bn": "d:", "bt": limit - 1, "n": "rel", "v": 1}, {"bt": limit, "n": "abs", "v": 1}],
        config=wide,
    )
    assert out[0].time == NOW + timedelta(seconds=limit - 1)
    assert out[1].time == datetime.fromtimestamp(limit, tz=UTC)


def test_absolute_time_with_fraction_and_offset() -> None:
    out = rows([{"bn": "d:", "bt": NOW_S - 60, "n": "x", "t": 0.5, "v": 1}])
    assert out[0].time == NOW - timedelta(seconds=59.5)


@pytest.mark.parametrize(
    "record",
    [
        {"v": 1, "vs": "a"},
        {"v": 1, "vb": True},
        {"vs": "a", "vd": "AQ"},
        {"vb": False, "vd": "AQ"},
        {"v": 1, "vs": "a", "vb": True, "vd": "AQ"},
    ],
)
def test_more_than_one_value_is_invalid(record: dict[str, Any]) -> None:
    assert fails([{"bn": "d:", "bt": NOW_S, "n": "x", **record}]) == ("validate", "invalid_value")


def test_value_kinds() -> None:
    out = rows(
        [
            {"bn": "d:", "bt": NOW_S, "n": "num", "u": "km/h", "v": 42},
            {"n": "on", "vb": True},
            {"n": "off", "vb": False},
            {"n": "fw", "vs": "4.2.1"},
            {"n": "blob", "vd": "aGVsbG8"},
            {"n": "energy", "u": "J", "s": 12.5},
        ]
    )
    got = {r.metric_name: (r.metric_value, r.metric_text, r.metadata.get("kind")) for r in out}
    assert got == {
        "num": (42.0, None, None),
        "on": (1.0, None, "bool"),
        "off": (0.0, None, "bool"),
        "fw": (None, "4.2.1", "string"),
        "blob": (None, "aGVsbG8", "data"),
        "energy": (12.5, None, "sum"),
    }
    assert out[0].metadata["unit"] == "km/h"


def test_units_are_kept_as_sent() -> None:
    out = rows(
        [
            {"bn": "d:", "bt": NOW_S, "n": "speed", "u": "km/h", "v": 90},
            {"n": "rssi", "u": "dBm", "v": -71},
            {"n": "temp", "u": "degF", "v": 70},
        ]
    )
    assert [(r.metadata["unit"], r.metric_value) for r in out] == [
        ("km/h", 90.0),
        ("dBm", -71.0),
        ("degF", 70.0),
    ]


def test_base_value_and_base_sum_are_added() -> None:
    out = rows(
        [
            {"bn": "d:", "bt": NOW_S, "bv": 100, "bs": 1000, "n": "a", "v": 5},
            {"n": "b", "s": 7},
            {"n": "c", "vs": "text"},
        ]
    )
    assert [r.metric_value for r in out] == [105.0, 1007.0, None]


def test_value_with_sum_uses_the_value() -> None:
    out = rows([{"bn": "d:", "bt": NOW_S, "n": "a", "v": 5, "s": 9}])
    assert out[0].metric_value == 5.0
    assert "kind" not in out[0].metadata


def test_base_only_records_give_no_row() -> None:
    out = rows([{"bn": "d:", "bt": NOW_S}, {"n": "a", "v": 1}, {"bu": "Cel"}, {"n": "b", "v": 2}])
    assert [(r.metric_name, r.metadata.get("unit")) for r in out] == [("a", None), ("b", "Cel")]


def test_pack_without_rows_is_missing_field() -> None:
    assert fails([{"bn": "d:", "bt": NOW_S}, {"bu": "Cel"}]) == ("validate", "missing_field")


@pytest.mark.parametrize(
    "record",
    [
        {"n": "x", "v": "1"},
        {"n": "x", "v": True},
        {"n": "x", "v": None},
        {"n": "x", "vb": 1},
        {"n": "x", "vs": 5},
        {"n": "x", "vd": "not base64!"},
        {"n": 5, "v": 1},
        {"n": "x", "u": 5, "v": 1},
        {"n": "x", "t": "now", "v": 1},
        {"n": "x", "s": "1"},
        {"bver": "10", "n": "x", "v": 1},
        {"bv": "1", "n": "x", "v": 1},
    ],
)
def test_wrong_types_are_invalid(record: dict[str, Any]) -> None:
    assert fails([{"bn": "d:", "bt": NOW_S}, record]) == ("validate", "invalid_value")


def test_text_values_are_limited() -> None:
    assert rows([{"bn": "d:", "bt": NOW_S, "n": "x", "vs": "a" * 255}])[0].metric_text == "a" * 255
    for label in ("vs", "vd"):
        assert fails([{"bn": "d:", "bt": NOW_S, "n": "x", label: "A" * 256}]) == (
            "validate",
            "value_out_of_range",
        )


def test_bver_above_10_is_unknown_format() -> None:
    assert len(rows([{"bver": 10, "bn": "d:", "bt": NOW_S, "n": "x", "v": 1}])) == 1
    assert fails([{"bver": 11, "bn": "d:", "bt": NOW_S, "n": "x", "v": 1}]) == (
        "decode",
        "unknown_format",
    )


def test_must_understand_label_is_unknown_format() -> None:
    assert fails([{"bn": "d:", "bt": NOW_S, "n": "x", "v": 1, "rt_": 5}]) == (
        "decode",
        "unknown_format",
    )
    # decode-stage verdicts win over a validation error in an earlier record
    assert fails([{"bn": "d:", "n": "x", "v": "bad"}, {"n": "y", "v": 1, "ext_": 1}]) == (
        "decode",
        "unknown_format",
    )


def test_other_unknown_labels_are_ignored() -> None:
    out = rows([{"bn": "d:", "bt": NOW_S, "n": "x", "v": 1, "ut": 60, "vendor": {"a": 1}}])
    assert [(r.metric_name, r.metric_value) for r in out] == [("x", 1.0)]


def test_device_type_from_header() -> None:
    pack = [{"bn": "d:", "bt": NOW_S, "n": "x", "v": 1}]
    assert rows(pack)[0].device_type == "senml"
    assert rows(pack, headers=(("device_type", b"tracker"),))[0].device_type == "tracker"
    assert fails(pack, headers=(("device_type", b"t" * 51),)) == ("validate", "value_out_of_range")
    assert fails(pack, headers=(("device_type", b"\xff"),)) == ("validate", "invalid_value")


def test_repeated_key_in_message_keeps_first_and_counts() -> None:
    out = decode(
        [
            {"bn": "d:", "bt": NOW_S, "n": "x", "v": 1},
            {"n": "x", "v": 2},
            {"n": "x", "t": 1, "v": 3},
            {"n": "x", "v": 4},
        ]
    )
    assert [r.metric_value for r in out.rows] == [1.0, 3.0]
    assert out.duplicates_in_message == 2


def test_message_is_atomic() -> None:
    assert fails([{"bn": "d:", "bt": NOW_S, "n": "ok", "v": 1}, {"n": "bad", "v": "x"}]) == (
        "validate",
        "invalid_value",
    )


# --- SenML positions ---------------------------------------------------------------


def test_lat_lon_pair_locates_rows_of_same_device_and_time() -> None:
    out = rows(
        [
            {"bn": "d:", "bt": NOW_S, "n": "speed", "u": "m/s", "v": 3},
            {"n": "lat", "u": "lat", "v": 60.5},
            {"n": "lon", "u": "lon", "v": 24.25},
            {"n": "heading", "v": 90},
            {"n": "late", "t": 10, "v": 1},
        ]
    )
    assert [r.metric_name for r in out] == ["speed", "heading", "late"]
    assert [r.location for r in out] == [(24.25, 60.5), (24.25, 60.5), None]


def test_lat_lon_identified_by_name_or_unit() -> None:
    by_name = rows(
        [
            {"bn": "d:", "bt": NOW_S, "n": "lat", "v": 1.5},
            {"n": "lon", "v": 2.5},
            {"n": "x", "v": 0},
        ]
    )
    by_unit = rows(
        [
            {"bn": "d:", "bt": NOW_S, "n": "gps_y", "u": "lat", "v": 1.5},
            {"n": "gps_x", "u": "lon", "v": 2.5},
            {"n": "x", "v": 0},
        ]
    )
    assert [(r.metric_name, r.location) for r in by_name] == [("x", (2.5, 1.5))]
    assert [(r.metric_name, r.location) for r in by_unit] == [("x", (2.5, 1.5))]


def test_lone_position_becomes_a_position_row() -> None:
    out = rows(
        [
            {"bn": "d:", "bt": NOW_S, "n": "lat", "u": "lat", "v": 60.1},
            {"n": "lon", "u": "lon", "v": 24.9},
        ]
    )
    assert len(out) == 1
    row = out[0]
    assert (row.metric_name, row.metric_value, row.metric_text) == ("position", None, None)
    assert row.location == (24.9, 60.1)
    assert row.time == NOW
    assert "unit" not in row.metadata
    assert row.metadata["device_ref"] == "d"


def test_unpaired_lat_is_a_plain_metric() -> None:
    out = rows(
        [
            {"bn": "d:", "bt": NOW_S, "n": "lat", "u": "lat", "v": 60.1},
            {"n": "lon", "u": "lon", "t": 5, "v": 24.9},
            {"n": "x", "v": 1},
        ]
    )
    assert [(r.metric_name, r.metric_value, r.location) for r in out] == [
        ("lat", 60.1, None),
        ("lon", 24.9, None),
        ("x", 1.0, None),
    ]
    assert out[0].metadata["unit"] == "lat"


def test_positions_pair_per_device() -> None:
    out = rows(
        [
            {"bn": "a:", "bt": NOW_S, "n": "lat", "v": 1.0},
            {"bn": "b:", "n": "lon", "v": 2.0},
            {"n": "x", "v": 1},
        ]
    )
    assert [(r.metric_name, r.location) for r in out] == [("lat", None), ("lon", None), ("x", None)]


def test_paired_position_out_of_range_is_rejected() -> None:
    assert fails([{"bn": "d:", "bt": NOW_S, "n": "lat", "v": 91}, {"n": "lon", "v": 24}]) == (
        "validate",
        "value_out_of_range",
    )


def test_text_lat_is_not_a_coordinate() -> None:
    out = rows([{"bn": "d:", "bt": NOW_S, "n": "lat", "vs": "north"}, {"n": "lon", "v": 24.0}])
    assert [(r.metric_name, r.location) for r in out] == [("lat", None), ("lon", None)]


# --- simple JSON (section 5.2) -----------------------------------------------------


def test_simple_object_and_array() -> None:
    one = rows(simple())
    assert len(one) == 1
    row = one[0]
    assert row.device_id == uuid5("SCBA-0457")
    assert (row.device_type, row.metric_name, row.metric_value, row.metric_text) == (
        "scba",
        "cylinder_pressure",
        212.5,
        None,
    )
    assert row.time == NOW - timedelta(minutes=1)
    assert row.metadata == {"device_ref": "SCBA-0457", "received_at": "2025-03-14T10:00:00Z"}
    two = rows([simple(), simple(metric="status", value=..., text="ok", unit="x")])
    assert [(r.metric_name, r.metric_text, r.metadata.get("kind")) for r in two] == [
        ("cylinder_pressure", None, None),
        ("status", "ok", "string"),
    ]


@pytest.mark.parametrize("field", ["device_id", "device_type", "time", "metric"])
@pytest.mark.parametrize("value", [..., None, ""])
def test_simple_required_fields(field: str, value: Any) -> None:
    if field == "device_id" and value is ...:
        # an object without device_id is not the simple format at all
        assert fails(simple(**{field: value})) == ("decode", "unknown_format")
    else:
        assert fails(simple(**{field: value})) == ("validate", "missing_field")
    assert fails([simple(), simple(**{field: value})]) == ("validate", "missing_field")


def test_simple_value_or_text() -> None:
    assert fails(simple(value=...)) == ("validate", "missing_field")
    assert fails(simple(text="x")) == ("validate", "invalid_value")
    out = rows([simple(value=True, metric="a"), simple(value=False, metric="b")])
    assert [(r.metric_value, r.metadata["kind"]) for r in out] == [(1.0, "bool"), (0.0, "bool")]


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"device_id": 17}, "invalid_value"),
        ({"device_id": "d" * 256}, "value_out_of_range"),
        ({"device_type": ["scba"]}, "invalid_value"),
        ({"device_type": "t" * 51}, "value_out_of_range"),
        ({"metric": "m" * 101}, "value_out_of_range"),
        ({"metric": "bad name"}, "invalid_value"),
        ({"metric": "_x"}, "invalid_value"),
        ({"value": "212"}, "invalid_value"),
        ({"value": [1]}, "invalid_value"),
        ({"value": ..., "text": 5}, "invalid_value"),
        ({"value": ..., "text": "t" * 256}, "value_out_of_range"),
        ({"unit": "u" * 33}, "value_out_of_range"),
        ({"unit": 5}, "invalid_value"),
        ({"time": "2025-03-14T09:59:00"}, "invalid_value"),
        ({"time": "yesterday"}, "invalid_value"),
        ({"time": True}, "invalid_value"),
        ({"metadata": [1]}, "invalid_value"),
        ({"location": {"type": "LineString", "coordinates": [[1, 2], [3, 4]]}}, "invalid_value"),
        ({"location": {"type": "Point", "coordinates": [200, 10]}}, "value_out_of_range"),
        ({"location": {"lon": 10, "lat": -91}}, "value_out_of_range"),
        ({"location": {"lon": 10}}, "missing_field"),
        ({"location": [24.9, 60.1]}, "invalid_value"),
    ],
)
def test_simple_field_errors(fields: dict[str, Any], code: str) -> None:
    assert fails(simple(**fields)) == ("validate", code)


def test_simple_limits_are_inclusive() -> None:
    row = rows(
        simple(
            device_id="d" * 255,
            device_type="t" * 50,
            metric="m" * 100,
            unit="u" * 32,
        )
    )[0]
    assert (len(row.device_type), len(row.metric_name), len(row.metadata["unit"])) == (50, 100, 32)


def test_simple_location_forms() -> None:
    point = rows(simple(location={"type": "Point", "coordinates": [24.95, 60.17, 12.0]}))[0]
    plain = rows(simple(location={"lon": 24.95, "lat": 60.17}))[0]
    assert point.location == plain.location == (24.95, 60.17)


def test_simple_metadata_is_merged_with_pipeline_keys_winning() -> None:
    row = rows(
        simple(
            unit="bar",
            metadata={"battery": 64, "unit": "psi", "device_ref": "x", "received_at": "x"},
        )
    )[0]
    assert row.metadata == {
        "battery": 64,
        "unit": "bar",
        "device_ref": "SCBA-0457",
        "received_at": "2025-03-14T10:00:00Z",
    }


def test_simple_epoch_times() -> None:
    out = rows([simple(time=NOW_S - 10, metric="s"), simple(time=(NOW_S - 20) * 1000, metric="m")])
    assert [r.time for r in out] == [NOW - timedelta(seconds=10), NOW - timedelta(seconds=20)]


def test_simple_repeated_key_counts() -> None:
    out = decode([simple(value=1), simple(value=2), simple(value=3, metric="other")])
    assert [r.metric_value for r in out.rows] == [1.0, 3.0]
    assert out.duplicates_in_message == 1


def test_mixed_array_follows_the_simple_rules() -> None:
    assert fails([simple(), {"bn": "d:", "n": "x", "v": 1}]) == ("validate", "missing_field")


# --- window (section 5.3) ----------------------------------------------------------

WEEK = timedelta(days=7)


@pytest.mark.parametrize(
    ("offset", "ok"),
    [
        (-WEEK, True),
        (-WEEK - timedelta(microseconds=1), False),
        (timedelta(seconds=300), True),
        (timedelta(seconds=300, microseconds=1), False),
        (timedelta(0), True),
    ],
)
def test_window_edges_simple(offset: timedelta, ok: bool) -> None:
    payload = simple(time=(NOW + offset).isoformat())
    if ok:
        assert rows(payload)[0].time == NOW + offset
    else:
        assert fails(payload) == ("validate", "timestamp_out_of_window")


@pytest.mark.parametrize(
    ("offset_s", "ok"),
    [
        (-7 * 86400, True),
        (-7 * 86400 - 0.001, False),
        (300, True),
        (300.001, False),
        (1e12, False),
        (-1e12, False),
    ],
)
def test_window_edges_senml(offset_s: float, ok: bool) -> None:
    payload = [{"bn": "d:", "bt": NOW_S, "n": "x", "t": offset_s, "v": 1}]
    if ok:
        assert rows(payload)[0].time == NOW + timedelta(seconds=offset_s)
    else:
        assert fails(payload) == ("validate", "timestamp_out_of_window")


def test_window_follows_now_not_the_kafka_time() -> None:
    late_kafka = NOW + timedelta(days=30)
    payload = simple(time=NOW.isoformat())
    assert len(rows(payload, at=late_kafka)) == 1
    assert fails(payload, now=late_kafka) == ("validate", "timestamp_out_of_window")


def test_window_settings_apply() -> None:
    tight = TelemetrySettings(max_age_s=60, max_future_s=0)
    assert fails(simple(time=(NOW - timedelta(seconds=61)).isoformat()), config=tight) == (
        "validate",
        "timestamp_out_of_window",
    )
    assert fails(simple(time=(NOW + timedelta(seconds=1)).isoformat()), config=tight) == (
        "validate",
        "timestamp_out_of_window",
    )


# --- device UUID (section 5.4) ------------------------------------------------------


def test_canonical_uuid_is_lower_cased_without_device_ref() -> None:
    ref = "0F8FAD5B-D9CB-469F-A165-70867728950E"
    row = rows(simple(device_id=ref))[0]
    assert row.device_id == uuid.UUID(ref.lower())
    assert "device_ref" not in row.metadata
    senml_row = rows([{"bn": ref.lower() + ":", "bt": NOW_S, "n": "x", "v": 1}])[0]
    assert senml_row.device_id == row.device_id


def test_non_canonical_ids_map_to_uuid5_of_the_nfc_trimmed_id() -> None:
    decomposed = "  Cafe\u0301-7 "
    row = rows(simple(device_id=decomposed))[0]
    assert row.device_id == uuid.uuid5(NS_DEVICE, "Caf\u00e9-7")
    assert row.metadata["device_ref"] == "Caf\u00e9-7"
    # case is kept: another id
    assert rows(simple(device_id="caf\u00e9-7"))[0].device_id != row.device_id
    # braces or no hyphens are not the canonical form
    braced = "{0f8fad5b-d9cb-469f-a165-70867728950e}"
    assert rows(simple(device_id=braced))[0].device_id == uuid.uuid5(NS_DEVICE, braced)


def test_both_formats_give_one_device_uuid() -> None:
    a = rows(simple(device_id="tracker-9"))[0]
    b = rows([{"bn": "tracker-9:", "bt": NOW_S, "n": "x", "v": 1}])[0]
    c = rows([{"bt": NOW_S, "n": "x", "v": 1}], key=b"tracker-9")[0]
    assert a.device_id == b.device_id == c.device_id == uuid.uuid5(NS_DEVICE, "tracker-9")


def test_blank_device_id_is_missing() -> None:
    assert fails(simple(device_id="   ")) == ("validate", "missing_field")


def test_rows_are_finite_floats() -> None:
    out = rows([{"bn": "d:", "bt": NOW_S, "n": "big", "v": 10**30}])
    assert isinstance(out[0].metric_value, float)
    assert math.isfinite(out[0].metric_value)


def test_extra_lat_lon_of_a_paired_group_count_as_duplicates() -> None:
    out = decode(
        [
            {"bn": "d:", "bt": NOW_S, "n": "lat", "v": 60.0},
            {"n": "lon", "v": 24.0},
            {"n": "gps_lat", "u": "lat", "v": 61.0},
            {"n": "x", "v": 1},
        ]
    )
    assert [(r.metric_name, r.location) for r in out.rows] == [("x", (24.0, 60.0))]
    assert out.duplicates_in_message == 1


def test_nul_in_the_kafka_key_used_as_device() -> None:
    assert fails([{"bt": NOW_S, "n": "x", "v": 1}], key=b"dev\x00") == ("validate", "nul_in_text")


def test_producer_metadata_never_supplies_pipeline_keys() -> None:
    row = rows(simple(metadata={"kind": "bool", "unit": "psi", "device_ref": "x", "site": "A"}))[0]
    assert row.metadata == {
        "site": "A",
        "device_ref": "SCBA-0457",
        "received_at": "2025-03-14T10:00:00Z",
    }


def test_device_ids_take_the_form_the_runtime_chose() -> None:
    from asyncpg.pgproto import pgproto

    from pipeline.clients.postgres import driver_uuid
    from pipeline.decoders.telemetry.fields import use_uuid_form

    plain = rows(simple())[0].device_id
    assert type(plain) is uuid.UUID
    use_uuid_form(driver_uuid)
    try:
        fast = rows(simple())[0].device_id
        # the driver's own type, equal to the stdlib id in every way that matters
        assert type(fast) is pgproto.UUID
        assert fast == plain
        assert hash(fast) == hash(plain)
        assert str(fast) == str(plain)
        assert fast == uuid5("SCBA-0457")
    finally:
        use_uuid_form(lambda u: u)
    assert type(rows(simple())[0].device_id) is uuid.UUID
