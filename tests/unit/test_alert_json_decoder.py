"""alerts.json decoder (docs/formats.md 4) and its sample file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.decoders.alert_json import decode_alert_json
from pipeline.errors import InputError
from schemas.canonical import CanonicalAlert
from schemas.intents import Discard, StoreAlert
from schemas.records import RawRecord
from tests.samples import alert_view, assert_subset, sample_records

NOW = datetime(2025, 3, 14, 9, 0, 0, tzinfo=UTC)
KAFKA_MS = int(NOW.timestamp() * 1000)


# --- the sample file ------------------------------------------------------------


def test_sample_file_in_order() -> None:
    stored: dict[tuple[str, str], CanonicalAlert] = {}
    samples = sample_records("alerts.json")
    assert samples
    for record, now, expect, where in samples:
        if expect["outcome"] == "dlq":
            with pytest.raises(InputError) as info:
                decode_alert_json(record, now)
            assert (info.value.stage, info.value.error_code) == (
                expect["stage"],
                expect["error_code"],
            ), where
            continue
        intents = decode_alert_json(record, now)
        if expect["outcome"] == "discard":
            assert intents == [Discard(expect["reason"])], where
            continue
        assert len(intents) == 1, where
        assert isinstance(intents[0], StoreAlert), where
        alert = intents[0].alert
        ident = (alert.source, alert.external_id)
        if expect["outcome"] == "duplicate":
            assert ident in stored, where
            continue
        assert expect["outcome"] == "alert", where
        assert ident not in stored, where
        assert_subset(expect["alert"], alert_view(alert), where)
        stored[ident] = alert


# --- unit cases ----------------------------------------------------------------


BASE: dict[str, Any] = {
    "source": "lone_worker_app",
    "external_id": "LW-1",
    "type": "panic",
    "title": "Lone worker pressed SOS",
}


def record(value: bytes | str | None, key: bytes | None = b"k") -> RawRecord:
    data = value.encode("utf-8") if isinstance(value, str) else value
    return RawRecord("alerts.json", 2, 77, KAFKA_MS, key, data)


def decode(message: Any, **kw: Any) -> CanonicalAlert:
    intents = decode_alert_json(record(json.dumps(message)), NOW, **kw)
    assert len(intents) == 1
    assert isinstance(intents[0], StoreAlert)
    assert intents[0].dismiss_if_key is None
    return intents[0].alert


def fails(message: Any, stage: str, code: str) -> None:
    raw = message if isinstance(message, bytes | str) else json.dumps(message)
    with pytest.raises(InputError) as info:
        decode_alert_json(record(raw), NOW)
    assert (info.value.stage, info.value.error_code) == (stage, code), info.value.reason


def test_minimal_message_gets_defaults() -> None:
    alert = decode(BASE)
    assert alert.severity == 3
    assert alert.status == "new"
    assert alert.received_at == NOW
    assert alert.processed_at == NOW
    assert alert.description is None
    assert alert.location is None
    assert alert.address is None
    assert alert.raw_payload == BASE
    assert alert.metadata == {
        "occurred_at": "2025-03-14T09:00:00Z",
        "ingest": {"topic": "alerts.json", "partition": 2, "offset": 77},
    }


def test_full_message() -> None:
    message = {
        **BASE,
        "severity": 1,
        "description": "held 3 s",
        "location": {"type": "Point", "coordinates": [24.8321, 60.1854, 12.5]},
        "address": {"street": "Mannerheimintie 1"},
        "occurred_at": "2025-03-14T11:02:17.5+02:00",
        "received_at": 1741943000,
        "metadata": {"battery_pct": 64},
    }
    alert = decode(message)
    assert alert.severity == 1
    assert alert.description == "held 3 s"
    assert alert.location is not None
    assert (alert.location.lon, alert.location.lat) == (24.8321, 60.1854)
    assert alert.address == {"street": "Mannerheimintie 1"}
    assert alert.received_at == datetime(2025, 3, 14, 9, 3, 20, tzinfo=UTC)
    assert alert.metadata["occurred_at"] == "2025-03-14T09:02:17.500000Z"
    assert alert.metadata["battery_pct"] == 64


def test_pipeline_metadata_keys_win() -> None:
    message = {**BASE, "metadata": {"occurred_at": "forged", "ingest": "forged", "k": [1]}}
    meta = decode(message).metadata
    assert meta["occurred_at"] == "2025-03-14T09:00:00Z"
    assert meta["ingest"] == {"topic": "alerts.json", "partition": 2, "offset": 77}
    assert meta["k"] == [1]


def test_explicit_raw_payload_and_ignored_server_columns() -> None:
    message = {
        **BASE,
        "raw_payload": {"vendor": "x"},
        "status": "acknowledged",
        "id": "00000000-0000-0000-0000-000000000000",
        "incident_id": 5,
        "something_else": True,
    }
    alert = decode(message)
    assert alert.status == "new"
    assert alert.raw_payload == {"vendor": "x"}
    assert "something_else" not in alert.metadata
    assert decode({**BASE, "x": 1}).raw_payload["x"] == 1


def test_lon_lat_object_location() -> None:
    alert = decode({**BASE, "location": {"lon": -180, "lat": 90}})
    assert alert.location is not None
    assert (alert.location.lon, alert.location.lat) == (-180.0, 90.0)


def test_clock_skew_recorded_only_above_300_s() -> None:
    ahead = decode({**BASE, "occurred_at": (NOW + timedelta(seconds=600)).isoformat()})
    assert ahead.metadata["clock_skew_s"] == 600.0
    near = decode({**BASE, "occurred_at": (NOW + timedelta(seconds=300)).isoformat()})
    assert "clock_skew_s" not in near.metadata
    behind = decode({**BASE, "occurred_at": (NOW - timedelta(days=30)).isoformat()})
    assert "clock_skew_s" not in behind.metadata


def test_external_id_is_nfc_and_trimmed() -> None:
    alert = decode({**BASE, "external_id": "  cafe\u0301-1 "})
    assert alert.external_id == "caf\u00e9-1"
    assert decode({**BASE, "external_id": "x" * 255}).external_id == "x" * 255


def test_title_is_trimmed_and_may_be_255() -> None:
    assert decode({**BASE, "title": "  SOS  "}).title == "SOS"
    assert len(decode({**BASE, "title": "t" * 255 + "   "}).title) == 255


def test_null_optional_fields_are_absent() -> None:
    alert = decode({**BASE, "severity": None, "location": None, "metadata": None})
    assert alert.severity == 3
    assert alert.location is None


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_valid_severities(severity: int) -> None:
    assert decode({**BASE, "severity": severity}).severity == severity


@pytest.mark.parametrize("source", ["a", "bms_2.floor-3", "x" * 100])
def test_valid_sources(source: str) -> None:
    assert decode({**BASE, "source": source}).source == source


@pytest.mark.parametrize("source", ["alarm_system", "axis_mic", "axis_device", "cap"])
def test_reserved_sources(source: str) -> None:
    fails({**BASE, "source": source}, "validate", "invalid_value")


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"severity": 2.0}, "invalid_value"),
        ({"severity": "2"}, "invalid_value"),
        ({"severity": True}, "invalid_value"),
        ({"severity": 0}, "value_out_of_range"),
        ({"severity": 6}, "value_out_of_range"),
        ({"source": "Bad Source"}, "invalid_value"),
        ({"source": "1abc"}, "invalid_value"),
        ({"source": "a" * 101}, "value_out_of_range"),
        ({"source": ""}, "missing_field"),
        ({"source": 5}, "invalid_value"),
        ({"type": "Fire"}, "invalid_value"),
        ({"type": "fire-alarm"}, "invalid_value"),
        ({"type": "f" * 51}, "value_out_of_range"),
        ({"type": ["fire"]}, "invalid_value"),
        ({"title": "   "}, "missing_field"),
        ({"title": "t" * 256}, "value_out_of_range"),
        ({"title": 42}, "invalid_value"),
        ({"external_id": ""}, "missing_field"),
        ({"external_id": "  "}, "missing_field"),
        ({"external_id": "x" * 256}, "value_out_of_range"),
        ({"external_id": "a\u0007b"}, "invalid_value"),
        ({"external_id": "a\nb"}, "invalid_value"),
        ({"external_id": 123}, "invalid_value"),
        ({"description": "d" * 65_537}, "value_out_of_range"),
        ({"description": ["d"]}, "invalid_value"),
        ({"location": {"type": "LineString", "coordinates": [[1, 2], [3, 4]]}}, "invalid_value"),
        ({"location": {"type": "Point", "coordinates": [1]}}, "invalid_value"),
        ({"location": {"type": "Point", "coordinates": ["24.9", "60.1"]}}, "invalid_value"),
        ({"location": {"type": "Point", "coordinates": [True, 60.1]}}, "invalid_value"),
        ({"location": {"type": "Point"}}, "missing_field"),
        ({"location": {"type": "Point", "coordinates": [24.9, 90.5]}}, "value_out_of_range"),
        ({"location": {"lon": 180.5, "lat": 60}}, "value_out_of_range"),
        ({"location": {"lon": 24.9, "lat": -91}}, "value_out_of_range"),
        ({"location": {"lon": 24.9}}, "missing_field"),
        ({"location": [24.9, 60.1]}, "invalid_value"),
        ({"address": "Main St 1"}, "invalid_value"),
        ({"metadata": [1, 2]}, "invalid_value"),
        ({"raw_payload": "text"}, "invalid_value"),
        ({"occurred_at": "2025-03-14T11:02:17"}, "invalid_value"),
        ({"occurred_at": "soon"}, "invalid_value"),
        ({"received_at": True}, "invalid_value"),
        ({"source": None}, "missing_field"),
    ],
)
def test_field_rules(change: dict[str, Any], code: str) -> None:
    fails({**BASE, **change}, "validate", code)


@pytest.mark.parametrize("field", ["source", "external_id", "type", "title"])
def test_required_fields(field: str) -> None:
    message = {k: v for k, v in BASE.items() if k != field}
    fails(message, "validate", "missing_field")


@pytest.mark.parametrize(
    "message",
    [
        {**BASE, "description": "SOS\u0000"},
        {**BASE, "metadata": {"note": ["a\u0000"]}},
        {**BASE, "metadata": {"k\u0000": 1}},
        {**BASE, "external_id": "LW\u0000"},
        {**BASE, "unknown": "\u0000"},
    ],
)
def test_nul_anywhere_is_rejected(message: dict[str, Any]) -> None:
    fails(message, "validate", "nul_in_text")


@pytest.mark.parametrize(
    ("raw", "stage", "code"),
    [
        ("[" + json.dumps(BASE) + "]", "decode", "unknown_format"),
        ("42", "decode", "unknown_format"),
        ('"alert"', "decode", "unknown_format"),
        ("{not json", "decode", "not_json"),
        ('{"source": "a", "source": "b"}', "decode", "not_json"),
        ("[" * 40 + "]" * 40, "decode", "not_json"),
        ('{"source": "a", "severity": NaN}', "validate", "invalid_value"),
        ('{"source": "a", "severity": Infinity}', "validate", "invalid_value"),
        (b'{"source": "\xff\xfe"}', "decode", "not_utf8"),
        (b"", "decode", "unknown_format"),
    ],
)
def test_decode_dead_letters(raw: bytes | str, stage: str, code: str) -> None:
    fails(raw, stage, code)


def test_oversize() -> None:
    raw = json.dumps(BASE)
    with pytest.raises(InputError) as info:
        decode_alert_json(record(raw), NOW, max_bytes=len(raw) - 1)
    assert (info.value.stage, info.value.error_code) == ("decode", "oversize")
    assert decode_alert_json(record(raw), NOW, max_bytes=len(raw))


def test_tombstone_is_discarded() -> None:
    assert decode_alert_json(record(None), NOW) == [Discard("tombstone")]


def test_leading_bom_is_dropped() -> None:
    intents = decode_alert_json(record(b"\xef\xbb\xbf" + json.dumps(BASE).encode()), NOW)
    assert isinstance(intents[0], StoreAlert)
