"""alerts.axis: message parsing, the edge tracker (docs/formats.md 2) and the
sample file, with in-memory stand-ins for the Redis state and the resources."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from pipeline.decoders.axis.event import AxisEvent, device_ms, parse_axis
from pipeline.decoders.axis.mapping import strip_topic
from pipeline.errors import InputError
from pipeline.settings import AxisInput, AxisSettings
from pipeline.stages.axis_edges import AxisEdgeTracker, AxisStateStore, DeviceDirectory
from schemas.canonical import CanonicalAlert, DeviceInfo, GeoPoint
from schemas.intents import Discard, Intent, PatchAlert, SetRedis, StoreAlert
from schemas.records import RawRecord
from tests.samples import EPOCH, alert_view, assert_subset, epoch_ms, load_fixtures, sample_records

T0 = 1_741_944_600_250  # 2025-03-14T09:30:00.250Z
NOW = EPOCH + timedelta(milliseconds=T0 + 160)
SERIAL = "ACCC8E7B2F10"
KEY = f"axis/{SERIAL}/event/tns:axis/AudioClassification/Screaming"
SETTINGS = AxisSettings()


# --- in-memory stand-ins for the two protocols ----------------------------------------


class MemoryStateStore:
    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, str]] = {}

    async def get(self, serial: str, field: str) -> str | None:
        return self.hashes.get(serial, {}).get(field)

    async def set(self, serial: str, field: str, value: str) -> None:
        self.hashes.setdefault(serial, {})[field] = value


class MemoryDirectory:
    def __init__(self, devices: dict[str, list[DeviceInfo]] | None = None) -> None:
        self.devices = {k.upper(): v for k, v in (devices or {}).items()}
        self.lookups: list[str] = []

    async def equipment_by_identifier(self, serial: str) -> list[DeviceInfo]:
        self.lookups.append(serial)
        return list(self.devices.get(serial.upper(), []))


def _protocols_fit(state: AxisStateStore, devices: DeviceDirectory) -> None:
    """Type-checked: the stand-ins satisfy the protocols the adapters implement."""


_protocols_fit(MemoryStateStore(), MemoryDirectory())

SENSOR = DeviceInfo(
    resource_id=UUID("78b7c96b-0b4e-4904-8dfe-ccc86b99f090"),
    name="Platform 3 audio sensor",
    location=GeoPoint(24.9413, 60.1719),
    agency_id=None,
    updated_at=datetime(2025, 1, 1, tzinfo=UTC),
)


# --- sample file ---------------------------------------------------------------------


def fixture_directory() -> MemoryDirectory:
    devices: dict[str, list[DeviceInfo]] = {}
    for row in load_fixtures()["resources"]:
        if row["type"] != "equipment":
            continue
        loc = row["current_location"]
        info = DeviceInfo(
            resource_id=UUID(row["id"]),
            name=row["name"],
            location=None if loc is None else GeoPoint(loc["lon"], loc["lat"]),
            agency_id=None,
            updated_at=datetime(2025, 1, 1, tzinfo=UTC),
        )
        devices.setdefault(row["identifier"].upper(), []).append(info)
    return MemoryDirectory(devices)


async def run_line(tracker: AxisEdgeTracker, record: RawRecord, now: datetime) -> list[Intent]:
    parsed = parse_axis(record, SETTINGS, now)
    return [parsed] if isinstance(parsed, Discard) else await tracker.intents(parsed, now)


async def test_sample_file_in_order() -> None:
    tracker = AxisEdgeTracker(MemoryStateStore(), fixture_directory(), SETTINGS)
    stored: dict[tuple[str, str], CanonicalAlert] = {}
    samples = sample_records("alerts.axis")
    assert samples
    for record, now, expect, where in samples:
        if expect["outcome"] == "dlq":
            with pytest.raises(InputError) as info:
                await run_line(tracker, record, now)
            got = (info.value.stage, info.value.error_code)
            assert got == (expect["stage"], expect["error_code"]), where
            continue
        intents = await run_line(tracker, record, now)
        outcome = expect["outcome"]
        assert len(intents) == 1, where
        intent = intents[0]
        if outcome == "discard":
            assert isinstance(intent, Discard), where
            assert intent.reason == expect["reason"], where
        elif outcome == "restore":
            target = stored[(expect["restores"]["source"], expect["restores"]["external_id"])]
            assert isinstance(intent, PatchAlert), where
            assert intent.kind == "restore", where
            assert intent.source == target.source, where
            if intent.external_id is not None:
                assert intent.external_id == target.external_id, where
            else:
                assert intent.match_key == target.metadata["match_key"], where
            assert_subset(expect["metadata_patch"], intent.metadata_patch, where)
        else:
            assert isinstance(intent, StoreAlert), where
            ident = (intent.alert.source, intent.alert.external_id)
            if outcome == "duplicate":
                assert ident in stored, where
                continue
            assert outcome == "alert", where
            assert ident not in stored, where
            assert_subset(expect["alert"], alert_view(intent.alert), where)
            stored[ident] = intent.alert


# --- builders ----------------------------------------------------------------------------


def payload(
    topic: str = "axis:AudioClassification/Screaming",
    data: dict[str, Any] | None = None,
    source: dict[str, Any] | None = None,
    timestamp: Any = T0,
    **extra: Any,
) -> dict[str, Any]:
    body = {
        "source": {"AudioSource": "AudioDevice0Input0"} if source is None else source,
        "key": {},
        "data": {"Detected": "1"} if data is None else data,
    }
    return {"topic": topic, "timestamp": timestamp, "message": body, **extra}


def record(
    value: dict[str, Any] | bytes | str | None,
    key: str | None = KEY,
    headers: tuple[tuple[str, bytes], ...] = (),
    kafka_ms: int | None = None,
) -> RawRecord:
    if isinstance(value, dict):
        data: bytes | None = json.dumps(value).encode()
    elif isinstance(value, str):
        data = value.encode()
    else:
        data = value
    ts = kafka_ms if kafka_ms is not None else epoch_ms(NOW)
    return RawRecord("alerts.axis", 3, 9, ts, None if key is None else key.encode(), data, headers)


def event_of(value: dict[str, Any], settings: AxisSettings = SETTINGS, **kw: Any) -> AxisEvent:
    parsed = parse_axis(record(value, **kw), settings, NOW)
    assert isinstance(parsed, AxisEvent), parsed
    return parsed


def fails(value: Any, stage: str, code: str, key: str | None = KEY, **kw: Any) -> None:
    with pytest.raises(InputError) as info:
        parse_axis(record(value, key=key, **kw), SETTINGS, NOW)
    assert (info.value.stage, info.value.error_code) == (stage, code), info.value.reason


def at(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


class Rig:
    """A tracker over fresh stand-ins, fed one payload at a time."""

    def __init__(
        self, devices: dict[str, list[DeviceInfo]] | None = None, settings: AxisSettings = SETTINGS
    ) -> None:
        self.state = MemoryStateStore()
        self.directory = MemoryDirectory({SERIAL: [SENSOR]} if devices is None else devices)
        self.settings = settings
        self.tracker = AxisEdgeTracker(self.state, self.directory, settings)

    async def feed(
        self, value: dict[str, Any], now: datetime | None = None, **kw: Any
    ) -> list[Intent]:
        clock = now or at(int(value["timestamp"]) + 100)
        parsed = parse_axis(record(value, **kw), self.settings, clock)
        if isinstance(parsed, Discard):
            return [parsed]
        return await self.tracker.intents(parsed, clock)

    async def one(self, value: dict[str, Any], **kw: Any) -> Intent:
        intents = await self.feed(value, **kw)
        assert len(intents) == 1
        return intents[0]

    async def alert(self, value: dict[str, Any], **kw: Any) -> CanonicalAlert:
        intent = await self.one(value, **kw)
        assert isinstance(intent, StoreAlert), intent
        assert intent.dismiss_if_key is None
        return intent.alert


def reason(intent: Intent) -> str:
    assert isinstance(intent, Discard), intent
    return intent.reason


def detected(value: str, ts: int, **kw: Any) -> dict[str, Any]:
    return payload(data={"Detected": value}, timestamp=ts, **kw)


# --- topic paths and mapping -------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "path"),
    [
        ("onvif:Device/axis:IO/Port", "Device/IO/Port"),
        ("tns1:VideoSource/tnsaxis:Tampering", "VideoSource/Tampering"),
        (
            "tns:onvif/Device/tns:axis/HardwareFailure/StorageFailure",
            "Device/HardwareFailure/StorageFailure",
        ),
        (
            "axis:CameraApplicationPlatform/AxisGunshot/Event",
            "CameraApplicationPlatform/AxisGunshot/Event",
        ),
        ("CameraApplicationPlatform/my_axis:app/x", "CameraApplicationPlatform/my_axis:app/x"),
        ("ONVIF:Device/AXIS:Casing/Open", "Device/Casing/Open"),
        ("AudioClassification/Screaming", "AudioClassification/Screaming"),
    ],
)
def test_strip_topic(topic: str, path: str) -> None:
    assert strip_topic(topic) == path


MAPPED = [
    (
        "axis:AudioClassification/Screaming",
        {"Detected": "1"},
        {},
        "scream",
        2,
        "axis_mic",
        "Screaming detected",
    ),
    (
        "axis:AudioClassification/Shout",
        {"Detected": "1"},
        {},
        "shout",
        3,
        "axis_mic",
        "Shouting detected",
    ),
    (
        "axis:AudioClassification/GlassBreak",
        {"Detected": "1"},
        {},
        "glass_break",
        2,
        "axis_mic",
        "Glass break detected",
    ),
    (
        "axis:AdaptiveAudioDetection/Detected",
        {"active": "1"},
        {},
        "loud_noise",
        3,
        "axis_mic",
        "Sudden loud sound",
    ),
    (
        "axis:SoundPressureLevel/AboveThresholdUpper",
        {"active": "1", "MaxSPL": "97.400"},
        {},
        "loud_noise",
        3,
        "axis_mic",
        "Sound level above threshold",
    ),
    (
        "tns1:AudioSource/axis:TriggerLevel",
        {"triggered": "1"},
        {"channel": "1"},
        "loud_noise",
        3,
        "axis_mic",
        "Audio level triggered",
    ),
    (
        "axis:CameraApplicationPlatform/GunshotDetector/Detected",
        {"active": "1"},
        {},
        "gunshot",
        1,
        "axis_mic",
        "Gunshot detected",
    ),
    (
        "axis:CameraApplicationPlatform/AXIS_GunShot_App/Alarm",
        {"state": "1"},
        {},
        "gunshot",
        1,
        "axis_mic",
        "Gunshot detected",
    ),
    (
        "axis:CameraApplicationPlatform/AggressionDetector/Event",
        {"active": "1"},
        {},
        "aggression",
        2,
        "axis_mic",
        "Aggression detected",
    ),
    (
        "axis:CameraApplicationPlatform/VerbalAGGRESSion/x",
        {"active": "1"},
        {},
        "aggression",
        2,
        "axis_mic",
        "Aggression detected",
    ),
    (
        "onvif:Device/axis:IO/Port",
        {"state": "1"},
        {"port": "1"},
        "io_input",
        3,
        "axis_device",
        "Input 1 active",
    ),
    (
        "onvif:Device/axis:IO/VirtualInput",
        {"active": "1"},
        {"port": "17"},
        "io_input",
        3,
        "axis_device",
        "Input 17 active",
    ),
    (
        "onvif:VideoSource/axis:Tampering",
        {"tampering": "1"},
        {"channel": "1"},
        "tamper",
        3,
        "axis_device",
        "Camera tampering",
    ),
    (
        "onvif:Device/axis:Casing/Open",
        {"Open": "1"},
        {},
        "tamper",
        3,
        "axis_device",
        "Camera tampering",
    ),
    (
        "onvif:Device/axis:HardwareFailure/StorageFailure",
        {"disruption": "1"},
        {"disk_id": "SD_DISK"},
        "trouble",
        4,
        "axis_device",
        "Storage failure",
    ),
    (
        "axis:audioclassification/SCREAMING",
        {"Detected": "1"},
        {},
        "scream",
        2,
        "axis_mic",
        "Screaming detected",
    ),
]


@pytest.mark.parametrize(("topic", "data", "source", "type_", "sev", "src", "label"), MAPPED)
async def test_every_mapping_row(
    topic: str,
    data: dict[str, Any],
    source: dict[str, Any],
    type_: str,
    sev: int,
    src: str,
    label: str,
) -> None:
    event = event_of(payload(topic, data=data, source=source))
    assert event.mapping is not None
    assert (event.mapping.type, event.mapping.severity, event.mapping.source) == (type_, sev, src)
    assert event.mapping.label == label
    alert = await Rig().alert(payload(topic, data=data, source=source))
    assert (alert.type, alert.severity, alert.source) == (type_, sev, src)
    assert alert.title == f"{label} - Platform 3 audio sensor"


@pytest.mark.parametrize(
    "topic",
    [
        "axis:AudioClassification/Speech",
        "axis:SoundPressureLevel/BelowThresholdLower",
        "axis:SoundPressureLevel/Summary",
        "axis:SoundPressureLevel/Metrics",
        "axis:AdaptiveAudioDetection/LevelData",
        "axis:CameraApplicationPlatform/ObjectAnalytics/Device1Scenario1",
        "axis:CameraApplicationPlatform",
        "onvif:RuleEngine/MotionRegionDetector/Motion",
        "onvif:Device/axis:IO/OutputPort",
    ],
)
def test_unmapped_topics_are_discarded(topic: str) -> None:
    parsed = parse_axis(record(payload(topic, data={"active": "maybe"})), SETTINGS, NOW)
    assert isinstance(parsed, Discard)
    assert parsed.reason == "axis_unmapped_topic"


def test_max_spl_goes_to_metadata() -> None:
    topic = "axis:SoundPressureLevel/AboveThresholdUpper"
    event = event_of(payload(topic, data={"active": "1", "MaxSPL": "97.400"}))
    assert event.state is True


async def test_max_spl_metadata_and_bad_readings() -> None:
    topic = "axis:SoundPressureLevel/AboveThresholdUpper"
    alert = await Rig().alert(payload(topic, data={"active": "1", "MaxSPL": "97.400"}, source={}))
    assert alert.metadata["max_spl_db"] == pytest.approx(97.4)
    odd = await Rig().alert(payload(topic, data={"active": "1", "MaxSPL": "loud"}, source={}))
    assert "max_spl_db" not in odd.metadata


def test_input_override_for_a_physical_port() -> None:
    settings = AxisSettings(
        inputs={
            "accc8e-7b:2f10:1": AxisInput(type="panic", severity=1, label="Panic button"),
            "OTHERSERIAL:2": AxisInput(type="panic", severity=1, label="Other"),
        }
    )
    port1 = event_of(payload("onvif:Device/axis:IO/Port", {"state": "1"}, {"port": "1"}), settings)
    assert port1.mapping is not None
    assert (port1.mapping.type, port1.mapping.severity, port1.mapping.label) == (
        "panic",
        1,
        "Panic button",
    )
    assert port1.mapping.source == "axis_device"
    port2 = event_of(payload("onvif:Device/axis:IO/Port", {"state": "1"}, {"port": "2"}), settings)
    assert port2.mapping is not None
    assert port2.mapping.type == "io_input"
    virtual = event_of(
        payload("onvif:Device/axis:IO/VirtualInput", {"active": "1"}, {"port": "1"}), settings
    )
    assert virtual.mapping is not None
    assert virtual.mapping.type == "io_input"


def test_port_without_port_item() -> None:
    event = event_of(payload("onvif:Device/axis:IO/Port", {"state": "1"}, {}))
    assert event.mapping is not None
    assert event.mapping.label == "Input active"


# --- state items and truth values --------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["1", "true", "TRUE", "active", "Active", "high", "HIGH", "on", "On", " 1 ", True, 1]
)
def test_true_values(value: Any) -> None:
    assert event_of(payload(data={"Detected": value})).state is True


@pytest.mark.parametrize(
    "value",
    ["0", "false", "False", "inactive", "INACTIVE", "low", "Low", "off", "OFF", "", False, 0],
)
def test_false_values(value: Any) -> None:
    assert event_of(payload(data={"Detected": value})).state is False


@pytest.mark.parametrize("value", ["2", "yes", "no", "enabled", "0.5", 2, 0.5, -1])
def test_other_state_values_are_invalid(value: Any) -> None:
    fails(payload(data={"Detected": value}), "validate", "invalid_value")


@pytest.mark.parametrize(
    ("data", "state"),
    [
        ({"state": "0", "active": "1"}, True),
        ({"Open": "1", "LogicalState": "0"}, True),
        ({"LogicalState": "1", "level": "7"}, True),
        ({"tampering": "0", "triggered": "1"}, True),
        ({"disruption": "1", "tampering": "0"}, True),
        ({"DETECTED": "0"}, False),
        ({"score": "0.93"}, None),
    ],
)
def test_state_item_precedence(data: dict[str, Any], state: bool | None) -> None:
    topic = "axis:CameraApplicationPlatform/GunshotDetector/Detected"
    assert event_of(payload(topic, data=data)).state is state


# --- serial, timestamp, operation ---------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "key", "serial"),
    [
        ({}, KEY, SERIAL),
        ({"serial": "b8a44f000001"}, KEY, "B8A44F000001"),
        ({"serialNumber": "B8:A4:4F:00:00:02"}, KEY, "B8A44F000002"),
        ({"serial_number": "b8-a4-4f-00-00-03"}, None, "B8A44F000003"),
        ({"serial": "  "}, KEY, SERIAL),
        ({}, "site/a/accc8e-7b2f10/event/tns:axis/AudioClassification/Screaming", SERIAL),
        ({}, "accc8e7b2f10/event/AudioClassification/Screaming", SERIAL),
    ],
)
def test_serial_rules(extra: dict[str, Any], key: str | None, serial: str) -> None:
    assert event_of(payload(**extra), key=key).serial == serial


@pytest.mark.parametrize(
    ("extra", "key", "code"),
    [
        ({}, None, "missing_field"),
        ({}, "axis/ACCC8E7B2F10/AudioClassification/Screaming", "missing_field"),
        ({}, "/event/AudioClassification/Screaming", "missing_field"),
        ({"serial": "ACCC_8E"}, KEY, "invalid_value"),
        ({"serial": "Ä" * 3}, KEY, "invalid_value"),
        ({"serial": "A" * 101}, KEY, "invalid_value"),
        ({"serial": 12345}, KEY, "invalid_value"),
    ],
)
def test_bad_serials(extra: dict[str, Any], key: str | None, code: str) -> None:
    fails(payload(**extra), "validate", code, key=key)


def test_non_utf8_key_counts_as_absent() -> None:
    with pytest.raises(InputError) as info:
        parse_axis(
            RawRecord("alerts.axis", 0, 0, T0, b"\xff/event/x", json.dumps(payload()).encode()),
            SETTINGS,
            NOW,
        )
    assert info.value.error_code == "missing_field"


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        (T0, T0),
        (str(T0), T0),
        (1_741_944_600, 1_741_944_600_000),
        ("1741944600.25", 1_741_944_600_250),
        (1741944600250.9, T0),
        ("2025-03-14T09:30:00.250999Z", T0),
        ("2025-03-14T11:30:00.250+02:00", T0),
    ],
)
def test_timestamp_forms(value: Any, ms: int) -> None:
    assert device_ms(value) == ms
    assert event_of(payload(timestamp=value)).timestamp_ms == ms


@pytest.mark.parametrize(
    "value", ["yesterday", "2025-03-14T09:30:00", True, None, [T0], {"ms": T0}]
)
def test_bad_timestamps(value: Any) -> None:
    fails(payload(timestamp=value), "validate", "invalid_value")


@pytest.mark.parametrize(
    ("op", "expected"),
    [("Initialized", "Initialized"), ("changed", "Changed"), ("DELETED", "Deleted")],
)
def test_operation(op: str, expected: str) -> None:
    assert event_of(payload(operation=op)).operation == expected
    assert event_of(payload(PropertyOperation=op)).operation == expected


# --- dead letters -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ({"topic": "axis:AudioClassification/GlassBreak", "timestamp": T0}, "missing_field"),
        ({"timestamp": T0, "message": {"source": {}, "data": {"Detected": "1"}}}, "missing_field"),
        ({**payload(), "topic": ""}, "missing_field"),
        ({**payload(), "topic": 7}, "invalid_value"),
        ({k: v for k, v in payload().items() if k != "timestamp"}, "missing_field"),
        ({**payload(), "message": "Detected"}, "invalid_value"),
        ({**payload(), "message": {"data": {"Detected": "1"}}}, "missing_field"),
        ({**payload(), "message": {"source": [], "data": {"Detected": "1"}}}, "invalid_value"),
        ({**payload(), "message": {"source": {}}}, "missing_field"),
        ({**payload(), "message": {"source": {}, "data": {}}}, "missing_field"),
        ({**payload(), "message": {"source": {}, "data": {"Detected": ["1"]}}}, "invalid_value"),
        ({**payload(), "message": {"source": {}, "data": {"Detected": None}}}, "invalid_value"),
        ({**payload(), "message": {"source": {"a": {}}, "data": {"x": "1"}}}, "invalid_value"),
        (payload(operation="Removed"), "invalid_value"),
        (payload(topic="tns:onvif/"), "invalid_value"),
        (payload(data={"Detected": "1\u0000"}), "nul_in_text"),
        (payload(source={"AudioSource": "A\u0000"}), "nul_in_text"),
    ],
)
def test_validate_dead_letters(value: dict[str, Any], code: str) -> None:
    fails(value, "validate", code)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("[1, 2]", "unknown_format"),
        ('"event"', "unknown_format"),
        ("{broken", "not_json"),
        ('{"topic": "a", "topic": "b"}', "not_json"),
        (b'{"topic": "\xff"}', "not_utf8"),
        (b"", "unknown_format"),
    ],
)
def test_decode_dead_letters(raw: str | bytes, code: str) -> None:
    fails(raw, "decode", code)


def test_nan_is_invalid_value() -> None:
    fails(
        '{"topic": "axis:AudioClassification/Shout", "timestamp": NaN}', "validate", "invalid_value"
    )


def test_oversize_and_tombstone() -> None:
    raw = json.dumps(payload()).encode()
    with pytest.raises(InputError) as info:
        parse_axis(record(raw), SETTINGS, NOW, max_bytes=len(raw) - 1)
    assert (info.value.stage, info.value.error_code) == ("decode", "oversize")
    assert isinstance(parse_axis(record(raw), SETTINGS, NOW, max_bytes=len(raw)), AxisEvent)
    assert parse_axis(record(None), SETTINGS, NOW) == Discard("tombstone")


# --- liveness ------------------------------------------------------------------------------


async def test_connection_topic_is_liveness() -> None:
    rig = Rig()
    key = f"axis/{SERIAL}/event/connection"
    intents = await rig.feed({"serial": SERIAL, "connected": True, "timestamp": T0}, key=key)
    assert intents == [SetRedis(f"eriop:axis:alive:{SERIAL}", f"1@{T0}")]
    # The device's last will carries no timestamp: the Kafka time is used.
    kafka_ms = T0 + 5000
    last_will = await rig.tracker.intents(
        _parsed(record({"connected": False}, key=key, kafka_ms=kafka_ms)), NOW
    )
    assert last_will == [SetRedis(f"eriop:axis:alive:{SERIAL}", f"0@{kafka_ms}")]
    bare = await rig.tracker.intents(_parsed(record({}, key=key, kafka_ms=kafka_ms)), NOW)
    assert bare == [SetRedis(f"eriop:axis:alive:{SERIAL}", f"1@{kafka_ms}")]
    assert rig.state.hashes == {}


async def test_boolean_connected_is_liveness_on_any_key() -> None:
    event = _parsed(record({"serialNumber": "b8a44f000009", "connected": False}, key=None))
    assert event.connected is False
    assert event.mapping is None
    intents = await Rig().tracker.intents(event, NOW)
    assert isinstance(intents[0], SetRedis)
    assert intents[0].key == "eriop:axis:alive:B8A44F000009"


def test_bad_connected_value_on_connection_topic() -> None:
    key = f"axis/{SERIAL}/event/connection"
    fails({"connected": "maybe"}, "validate", "invalid_value", key=key)


def _parsed(rec: RawRecord) -> AxisEvent:
    parsed = parse_axis(rec, SETTINGS, NOW)
    assert isinstance(parsed, AxisEvent)
    return parsed


# --- edges -----------------------------------------------------------------------------------


async def test_rising_edge_alert_columns() -> None:
    rig = Rig()
    msg = detected("1", T0)
    alert = await rig.alert(msg)
    assert alert.source == "axis_mic"
    assert alert.external_id == (
        f"axis:{SERIAL}:AudioClassification/Screaming:AudioSource=AudioDevice0Input0:{T0}"
    )
    assert alert.status == "new"
    assert alert.title == "Screaming detected - Platform 3 audio sensor"
    assert alert.location == GeoPoint(24.9413, 60.1719)
    assert alert.description == (
        "Topic: axis:AudioClassification/Screaming\n"
        "Source: AudioSource=AudioDevice0Input0\nData: Detected=1"
    )
    assert alert.raw_payload == msg
    assert alert.received_at == NOW
    assert alert.processed_at == at(T0 + 100)
    match_key = f"{SERIAL}|audioclassification/screaming|AudioSource=AudioDevice0Input0"
    assert alert.metadata == {
        "occurred_at": "2025-03-14T09:30:00.250000Z",
        "ingest": {"topic": "alerts.axis", "partition": 3, "offset": 9},
        "device_serial": SERIAL,
        "resource_id": "78b7c96b-0b4e-4904-8dfe-ccc86b99f090",
        "axis": {
            "topic": "axis:AudioClassification/Screaming",
            "path": "AudioClassification/Screaming",
            "source": {"AudioSource": "AudioDevice0Input0"},
            "data": {"Detected": "1"},
        },
        "match_key": match_key,
    }
    field = "audioclassification/screaming|AudioSource=AudioDevice0Input0"
    assert rig.state.hashes == {SERIAL: {field: f"1@{T0}"}}
    assert rig.directory.lookups == [SERIAL]


async def test_continuing_true_then_falling_edge_restores() -> None:
    rig = Rig()
    first = await rig.alert(detected("1", T0))
    assert reason(await rig.one(detected("1", T0 + 2000))) == "axis_state_unchanged"
    restore = await rig.one(detected("0", T0 + 6500))
    assert restore == PatchAlert(
        kind="restore",
        source="axis_mic",
        match_key=first.metadata["match_key"],
        metadata_patch={"restored_at": "2025-03-14T09:30:06.750000Z"},
    )
    assert reason(await rig.one(detected("0", T0 + 9000))) == "axis_state_unchanged"
    # Outside the rearm window a new rising edge is a new alert.
    again = await rig.alert(detected("1", T0 + 20_000))
    assert again.external_id != first.external_id


async def test_false_with_unknown_state_still_restores() -> None:
    intent = await Rig().one(detected("0", T0))
    assert isinstance(intent, PatchAlert)
    assert intent.kind == "restore"


async def test_redelivery_repeats_the_same_intent() -> None:
    rig = Rig()
    first = await rig.alert(detected("1", T0))
    second = await rig.alert(detected("1", T0))
    assert (second.source, second.external_id) == (first.source, first.external_id)
    await rig.one(detected("0", T0 + 1000))
    repeat = await rig.one(detected("0", T0 + 1000))
    assert isinstance(repeat, PatchAlert)
    assert repeat.kind == "restore"


async def test_stale_event_is_ignored_and_keeps_state() -> None:
    rig = Rig()
    await rig.alert(detected("1", T0 + 5000))
    assert reason(await rig.one(detected("0", T0))) == "axis_stale_event"
    field = "audioclassification/screaming|AudioSource=AudioDevice0Input0"
    assert rig.state.hashes[SERIAL][field] == f"1@{T0 + 5000}"


@pytest.mark.parametrize("operation", ["Initialized", "Deleted"])
async def test_snapshot_operations_only_sync_state(operation: str) -> None:
    rig = Rig()
    assert reason(await rig.one(detected("1", T0, operation=operation))) == "axis_state_sync"
    field = "audioclassification/screaming|AudioSource=AudioDevice0Input0"
    assert rig.state.hashes[SERIAL][field] == f"1@{T0}"
    # The condition was already known to be on: a later true is no new edge.
    assert reason(await rig.one(detected("1", T0 + 60_000))) == "axis_state_unchanged"


async def test_changed_operation_is_an_edge() -> None:
    assert isinstance(await Rig().one(detected("1", T0, operation="Changed")), StoreAlert)


async def test_retained_message_only_syncs_state() -> None:
    rig = Rig()
    retained = (("mqtt-retain", b"1"),)
    assert reason(await rig.one(detected("1", T0), headers=retained)) == "axis_state_sync"
    assert isinstance(await rig.one(detected("0", T0 + 1000)), PatchAlert)
    fresh = (("mqtt-retain", b"0"),)
    assert isinstance(await rig.one(detected("1", T0 + 60_000), headers=fresh), StoreAlert)


async def test_too_old_events_only_sync_state() -> None:
    rig = Rig()
    old = await rig.one(detected("1", T0), now=at(T0 + 600_001))
    assert reason(old) == "axis_state_sync"
    field = "audioclassification/screaming|AudioSource=AudioDevice0Input0"
    assert rig.state.hashes[SERIAL][field] == f"1@{T0}"
    edge = await Rig().one(detected("1", T0), now=at(T0 + 600_000))
    assert isinstance(edge, StoreAlert)


async def test_rearm_within_window_reopens_previous_alert() -> None:
    rig = Rig()
    first = await rig.alert(detected("1", T0))
    await rig.one(detected("0", T0 + 3000))
    rearm = await rig.one(detected("1", T0 + 13_000))  # exactly 10 s after the fall
    assert isinstance(rearm, PatchAlert)
    assert rearm.kind == "rearm"
    assert rearm.source == "axis_mic"
    assert rearm.match_key == first.metadata["match_key"]
    assert rearm.metadata_patch == {"retriggered_at": "2025-03-14T09:30:13.250000Z"}
    # Should the restored alert be gone, the edge is stored as a new alert.
    assert len(rearm.on_miss) == 1
    fallback = rearm.on_miss[0]
    assert isinstance(fallback, StoreAlert)
    assert fallback.alert.external_id.endswith(f":{T0 + 13_000}")
    await rig.one(detected("0", T0 + 14_000))
    late = await rig.one(detected("1", T0 + 24_001))
    assert isinstance(late, StoreAlert)


async def test_rearm_window_is_configurable() -> None:
    rig = Rig(settings=AxisSettings(rearm_window_s=0))
    await rig.alert(detected("1", T0))
    await rig.one(detected("0", T0 + 1))
    assert isinstance(await rig.one(detected("1", T0 + 2)), StoreAlert)


async def test_tampering_alerts_on_every_true() -> None:
    rig = Rig()
    topic = "onvif:VideoSource/axis:Tampering"

    def tamper(value: str, ts: int) -> dict[str, Any]:
        return payload(topic, data={"tampering": value}, source={"channel": "1"}, timestamp=ts)

    a = await rig.alert(tamper("1", T0))
    b = await rig.alert(tamper("1", T0 + 1000))
    assert a.external_id != b.external_id
    assert reason(await rig.one(tamper("0", T0 + 2000))) == "axis_state_unchanged"
    retained = (("mqtt-retain", b"1"),)
    assert reason(await rig.one(tamper("1", T0 + 3000), headers=retained)) == "axis_state_sync"
    assert reason(await rig.one(tamper("1", T0 + 500))) == "axis_stale_event"


async def test_events_without_state_item_alert_each_time() -> None:
    rig = Rig()
    topic = "axis:CameraApplicationPlatform/GunshotDetector/Shot"
    first = await rig.alert(payload(topic, data={"score": "0.93"}, source={}))
    second = await rig.alert(payload(topic, data={"score": "0.97"}, source={}, timestamp=T0 + 1))
    assert first.external_id != second.external_id
    assert (
        first.external_id == f"axis:{SERIAL}:CameraApplicationPlatform/GunshotDetector/Shot:-:{T0}"
    )
    assert rig.state.hashes == {}
    synced = await rig.one(payload(topic, data={"score": "1"}, operation="Initialized"))
    assert reason(synced) == "axis_state_sync"


async def test_corrupt_stored_state_reads_as_unknown() -> None:
    rig = Rig()
    field = "audioclassification/screaming|AudioSource=AudioDevice0Input0"
    rig.state.hashes[SERIAL] = {field: "garbage"}
    assert isinstance(await rig.one(detected("1", T0)), StoreAlert)


async def test_source_items_are_sorted_in_keys_and_ids() -> None:
    rig = Rig()
    alert = await rig.alert(detected("1", T0, source={"b": "2", "a": 1, "c": True}))
    assert alert.external_id == f"axis:{SERIAL}:AudioClassification/Screaming:a=1,b=2,c=true:{T0}"
    assert alert.metadata["match_key"].endswith("|a=1,b=2,c=true")


async def test_description_lists_items_as_text() -> None:
    alert = await Rig().alert(payload(data={"Detected": True, "level": 7}, source={}))
    assert alert.description == (
        "Topic: axis:AudioClassification/Screaming\nSource: -\nData: Detected=true, level=7"
    )


async def test_very_long_external_id_is_hashed() -> None:
    alert = await Rig().alert(detected("1", T0, source={"AudioSource": "x" * 300}))
    assert alert.external_id.startswith("sha256:")


async def test_clock_skew_is_recorded() -> None:
    alert = await Rig().alert(detected("1", T0), kafka_ms=T0 - 301_000)
    assert alert.metadata["clock_skew_s"] == pytest.approx(301.0)
    assert "clock_skew_s" not in (await Rig().alert(detected("1", T0))).metadata


# --- device lookup ---------------------------------------------------------------------------


async def test_unregistered_device_still_alerts() -> None:
    alert = await Rig(devices={}).alert(detected("1", T0))
    assert alert.location is None
    assert alert.title == f"Screaming detected - {SERIAL}"
    assert alert.metadata["device_unregistered"] is True
    assert alert.metadata["resource_id"] is None


async def test_ambiguous_device_takes_the_newest() -> None:
    older = DeviceInfo(uuid4(), "Old", GeoPoint(1.0, 2.0), None, datetime(2024, 1, 1, tzinfo=UTC))
    newer = DeviceInfo(uuid4(), "New", None, uuid4(), datetime(2025, 2, 1, tzinfo=UTC))
    alert = await Rig(devices={SERIAL: [newer, older]}).alert(detected("1", T0))
    assert alert.metadata["ambiguous_device"] is True
    assert alert.metadata["resource_id"] == str(newer.resource_id)
    assert alert.title == "Screaming detected - New"
    assert alert.location is None
    assert "device_unregistered" not in alert.metadata
    single = await Rig().alert(detected("1", T0))
    assert "ambiguous_device" not in single.metadata


async def test_long_resource_name_is_cut() -> None:
    device = DeviceInfo(uuid4(), "n" * 400, None, None, datetime(2025, 1, 1, tzinfo=UTC))
    alert = await Rig(devices={SERIAL: [device]}).alert(detected("1", T0))
    assert len(alert.title) == 255


async def test_directory_only_consulted_for_alerts() -> None:
    rig = Rig()
    await rig.one(detected("0", T0))
    await rig.one(detected("1", T0 + 60_000, operation="Initialized"))
    assert rig.directory.lookups == []
