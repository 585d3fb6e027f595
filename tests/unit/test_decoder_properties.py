"""Property tests: whatever bytes arrive, every decoder either produces intents
(a stored record, a patch, a discard) or raises an input error with a known
error code. Nothing else may escape: any other exception would be an
``internal_error`` dead letter, i.e. a pipeline bug."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.decoders.alarm.decoder import decode_alarm
from pipeline.decoders.alert_json import decode_alert_json
from pipeline.decoders.axis.event import parse_axis
from pipeline.decoders.cap.decoder import decode_cap
from pipeline.decoders.gps.decoder import decode_gps
from pipeline.decoders.telemetry.decoder import decode_telemetry
from pipeline.errors import ERROR_CODES, InputError
from pipeline.settings import (
    AlarmSettings,
    AxisSettings,
    CapSettings,
    GpsSettings,
    TelemetrySettings,
)
from pipeline.stages.axis_edges import AxisEdgeTracker
from schemas.canonical import DeviceInfo
from schemas.intents import Discard
from schemas.records import RawRecord
from tests.conftest import load_fixtures, load_samples

NOW = datetime(2025, 3, 14, 10, 0, tzinfo=UTC)
ALARM = AlarmSettings.model_validate(load_fixtures()["config"]["alarm"])  # type: ignore[index]


class MemoryState:
    def __init__(self) -> None:
        self.data: dict[tuple[str, str], str] = {}

    async def get(self, serial: str, field: str) -> str | None:
        return self.data.get((serial, field))

    async def set(self, serial: str, field: str, value: str) -> None:
        self.data[(serial, field)] = value


class NoDevices:
    async def equipment_by_identifier(self, serial: str) -> list[DeviceInfo]:
        return []


def axis(record: RawRecord) -> object:
    event = parse_axis(record, AxisSettings(), NOW)
    if isinstance(event, Discard):
        return event
    tracker = AxisEdgeTracker(MemoryState(), NoDevices(), AxisSettings())
    return asyncio.run(tracker.intents(event, NOW))


DECODERS: dict[str, Callable[[RawRecord], object]] = {
    "alerts.alarm": lambda r: decode_alarm(r, ALARM, NOW),
    "alerts.axis": axis,
    "alerts.cap": lambda r: decode_cap(r, CapSettings(), NOW),
    "alerts.json": lambda r: decode_alert_json(r, NOW),
    "telemetry.raw": lambda r: decode_telemetry(r, TelemetrySettings(), NOW),
    "gps.raw": lambda r: decode_gps(r, GpsSettings(), NOW),
}


def sample_values(topic: str) -> list[tuple[bytes, bytes | None]]:
    out = []
    for line in load_samples(topic):
        value = (
            base64.b64decode(line["value_b64"]) if "value_b64" in line else line["value"].encode()
        )  # type: ignore[union-attr,arg-type]
        key = line["key"].encode() if line.get("key") else None  # type: ignore[union-attr]
        out.append((value, key))
    return out


def outcome_of(topic: str, value: bytes, key: bytes | None) -> str:
    record = RawRecord(topic, 0, 0, int(NOW.timestamp() * 1000), key, value)
    try:
        DECODERS[topic](record)
    except InputError as exc:
        error = exc
    else:
        return "ok"
    assert error.error_code in ERROR_CODES, error.error_code
    assert error.error_code != "internal_error"
    assert len(error.reason) <= 500
    return error.error_code


@st.composite
def mutated(draw: Any, samples: list[tuple[bytes, bytes | None]]) -> tuple[bytes, bytes | None]:
    value, key = draw(st.sampled_from(samples))
    data = bytearray(value)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splice"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 8))]
        elif op == "truncate":
            data = data[:pos]
        elif op == "splice":
            data[pos:pos] = draw(
                st.sampled_from(
                    [
                        b"\x00",
                        b"\\u0000",
                        b'"',
                        b"}",
                        b"]",
                        b"NaN",
                        b"1e999",
                        b"<!DOCTYPE x>",
                        b"\xff",
                    ]
                )
            )
    return bytes(data), key


PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _make(topic: str) -> tuple[Callable[..., None], Callable[..., None]]:
    samples = sample_values(topic)

    @PROPS
    @given(value=st.binary(max_size=600), key=st.one_of(st.none(), st.binary(max_size=40)))
    def arbitrary_bytes(value: bytes, key: bytes | None) -> None:
        outcome_of(topic, value, key)

    @PROPS
    @given(case=mutated(samples))
    def mutated_samples(case: tuple[bytes, bytes | None]) -> None:
        outcome_of(topic, *case)

    return arbitrary_bytes, mutated_samples


test_alarm_bytes, test_alarm_mutations = _make("alerts.alarm")
test_axis_bytes, test_axis_mutations = _make("alerts.axis")
test_cap_bytes, test_cap_mutations = _make("alerts.cap")
test_json_bytes, test_json_mutations = _make("alerts.json")
test_telemetry_bytes, test_telemetry_mutations = _make("telemetry.raw")
test_gps_bytes, test_gps_mutations = _make("gps.raw")


def test_the_property_can_fail() -> None:
    """The checker itself: an unexpected exception is not an input error."""

    def broken(record: RawRecord) -> object:
        raise KeyError("bug")

    DECODERS["broken"] = broken
    try:
        try:
            outcome_of("broken", b"{}", None)
        except KeyError:
            return
        raise AssertionError("a non-input exception must escape the checker")
    finally:
        del DECODERS["broken"]
