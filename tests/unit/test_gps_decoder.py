"""gps.raw decoding (docs/formats.md 0, 6.1, 6.2, the per-fix rows of 6.3, and 7)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from functools import reduce
from operator import xor
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.decoders.envelope import check_no_nul, iso_utc, parse_timestamp
from pipeline.decoders.gps.decoder import decode_gps, decode_gps_batch
from pipeline.decoders.gps.fields import (
    Context,
    check_position,
    checked_accuracy,
    checked_heading,
    checked_speed,
)
from pipeline.errors import InputError, ValidationError
from pipeline.settings import GpsSettings
from pipeline.stages.plausibility import AcceptedFix, PlausibilityTracker, ResourceInfo, resolve_ref
from schemas.canonical import LocationFix
from schemas.intents import Discard
from schemas.records import RawRecord
from tests.samples import assert_row, epoch_ms, load_fixtures, sample_records

NOW = datetime(2025, 3, 14, 10, 20, 0, tzinfo=UTC)
SETTINGS = GpsSettings()


def raw(value: bytes | None, *, key: bytes | None = b"ENG-7", at: datetime = NOW) -> RawRecord:
    return RawRecord("gps.raw", 1, 3, epoch_ms(at), key, value)


def decode(payload: Any, *, now: datetime = NOW, **kw: Any) -> list[LocationFix] | Discard:
    """decode_gps of the payload; the batch decoder must agree on every record."""
    if isinstance(payload, bytes):
        value = payload
    elif isinstance(payload, str):
        value = payload.encode()
    else:
        value = json.dumps(payload).encode()
    record = raw(value, **kw)
    (batched,) = decode_gps_batch([record], SETTINGS, now)
    try:
        single = decode_gps(record, SETTINGS, now)
    except InputError as exc:
        error = exc
    else:
        assert batched == single
        return single
    assert isinstance(batched, InputError)
    assert (type(batched), batched.error_code, str(batched)) == (
        type(error),
        error.error_code,
        str(error),
    )
    raise error


def fixes(payload: Any, **kw: Any) -> list[LocationFix]:
    out = decode(payload, **kw)
    assert isinstance(out, list)
    return out


def fix(payload: Any, **kw: Any) -> LocationFix:
    out = fixes(payload, **kw)
    assert len(out) == 1
    return out[0]


def fails(payload: Any, **kw: Any) -> tuple[str, str]:
    with pytest.raises(InputError) as info:
        decode(payload, **kw)
    return info.value.stage, info.value.error_code


def avl(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "identifier": "ENG-7",
        "lat": 60.1921,
        "lon": 24.9458,
        "time": "2025-03-14T10:19:50Z",
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def sentence(body: str, checksum: str | None = None) -> str:
    """``$body*CS`` with the XOR checksum (or the one given)."""
    if checksum is None:
        checksum = f"{reduce(xor, body.encode(), 0):02X}"
    return f"${body}*{checksum}"


def nmea(*bodies: str) -> str:
    return "\r\n".join(sentence(b) for b in bodies) + "\r\n"


RMC = "GNRMC,101950.00,A,6011.2345,N,02456.7890,E,23.7,181.4,140325,,,A"
GGA = "GNGGA,101950.00,6011.2345,N,02456.7890,E,1,09,0.9,21.4,M,17.8,M,,"


# --- the samples of docs/formats.md 6.5, through resolution and plausibility --------


class FixtureLoader:
    """Last fixes as the sample fixtures imply: none for resources never located."""

    def __init__(self, fixes: dict[UUID, AcceptedFix]) -> None:
        self.fixes = fixes

    async def load(self, resource_ids: Any) -> dict[UUID, AcceptedFix]:
        return {rid: self.fixes[rid] for rid in resource_ids if rid in self.fixes}


def _fixture_resources() -> list[ResourceInfo]:
    return [
        ResourceInfo(UUID(r["id"]), r["type"], r["identifier"], None)
        for r in load_fixtures()["resources"]
    ]


async def test_sample_lines_in_order() -> None:
    resources = _fixture_resources()
    by_id = {r.id: r for r in resources}
    by_identifier: dict[str, list[ResourceInfo]] = {}
    for r in resources:
        by_identifier.setdefault(r.identifier, []).append(r)
    tracker = PlausibilityTracker(FixtureLoader({}), SETTINGS)
    samples = sample_records("gps.raw")
    assert samples
    for record, at, expect, where in samples:
        error: InputError | None = None
        try:
            out = decode_gps(record, SETTINGS, at)
            resolved = (
                [(f, resolve_ref(f.resource_ref, by_id, by_identifier)) for f in out]
                if isinstance(out, list)
                else []
            )
        except InputError as exc:
            error = exc
        if expect["outcome"] == "dlq":
            assert error is not None, where
            assert (error.stage, error.error_code) == (expect["stage"], expect["error_code"])
            continue
        assert error is None, (where, error)
        if expect["outcome"] == "discard":
            assert out == Discard(expect["reason"], out.detail if isinstance(out, Discard) else {})
            continue
        assert expect["outcome"] == "location", where
        stored = await tracker.assess(resolved)
        assert len(stored.rows) == 1 == len(stored.moves), where
        assert_row(stored.rows[0], expect["row"])
        assert stored.moves[0] is expect["moves_resource"], where
        assert stored.rows[0].metadata["received_at"] == iso_utc(record.kafka_time)


# --- envelope and format detection ---------------------------------------------------


def test_tombstone_is_skipped() -> None:
    assert decode_gps(raw(None), SETTINGS, NOW) == Discard("tombstone")


@pytest.mark.parametrize(
    ("value", "stage", "code"),
    [
        (b"", "decode", "unknown_format"),
        (b"\xff$GPRMC", "decode", "not_utf8"),
        (b"hello", "decode", "unknown_format"),
        (b"42", "decode", "unknown_format"),
        (b"[]", "decode", "unknown_format"),
        (b"[1]", "decode", "unknown_format"),
        (b"{", "decode", "not_json"),
        (b'{"lat":1,"lat":2}', "decode", "not_json"),
        (b'{"identifier":"ENG-7","lat":NaN,"lon":1,"time":1}', "validate", "invalid_value"),
        (b'{"identifier":"ENG-7\\u0000","lat":60,"lon":24,"time":1}', "validate", "nul_in_text"),
    ],
)
def test_envelope_and_parse_errors(value: bytes, stage: str, code: str) -> None:
    assert fails(value) == (stage, code)


def test_oversize() -> None:
    value = json.dumps(avl()).encode()
    with pytest.raises(InputError) as info:
        decode_gps(raw(value), SETTINGS, NOW, max_bytes=len(value) - 1)
    assert info.value.error_code == "oversize"
    assert isinstance(decode_gps(raw(value), SETTINGS, NOW, max_bytes=len(value)), list)


def test_leading_whitespace_and_bom_before_detection() -> None:
    assert fix(("\ufeff  \n" + json.dumps(avl())).encode()).lat == 60.1921
    assert fix("\n" + nmea(RMC)).lat == pytest.approx(60.187242, abs=1e-6)


# --- JSON AVL (section 6.1) ----------------------------------------------------------


def test_avl_fix_fields() -> None:
    f = fix(avl(speed=13.9, heading=92, accuracy=6, altitude=31.5, source="gnss"))
    assert f.time == datetime(2025, 3, 14, 10, 19, 50, tzinfo=UTC)
    assert (f.resource_ref, f.lat, f.lon) == ("ENG-7", 60.1921, 24.9458)
    assert (f.speed, f.heading, f.accuracy, f.source) == (13.9, 92.0, 6.0, "gnss")
    assert f.metadata == {
        "format": "avl",
        "altitude_m": 31.5,
        "received_at": "2025-03-14T10:20:00Z",
    }
    assert f.flags == []


def test_avl_defaults() -> None:
    f = fix(avl())
    assert (f.speed, f.heading, f.accuracy, f.source) == (None, None, None, "gps")
    assert "altitude_m" not in f.metadata


def test_avl_array_keeps_order() -> None:
    out = fixes([avl(time="2025-03-14T10:19:00Z"), avl(time="2025-03-14T10:19:30Z", lat=60.2)])
    assert [(f.time.second, f.lat) for f in out] == [(0, 60.1921), (30, 60.2)]


def test_avl_array_is_atomic() -> None:
    assert fails([avl(), avl(lat=None)]) == ("validate", "missing_field")


def test_avl_resource_reference() -> None:
    rid = "2441EC2A-CE83-4F28-9C7C-3CFF47793B53"
    assert fix(avl(resource_id=rid)).resource_ref == rid.lower()
    assert fix(avl(identifier="AMB-12")).resource_ref == "AMB-12"
    assert fix(avl(identifier=...), key=b"AMB-12").resource_ref == "AMB-12"
    assert fix(avl(identifier=None), key=b"AMB-12").resource_ref == "AMB-12"
    assert fails(avl(identifier=...), key=None) == ("validate", "missing_field")
    assert fails(avl(identifier=...), key=b"\xff") == ("validate", "missing_field")
    assert fails(avl(resource_id="not-a-uuid")) == ("validate", "invalid_value")
    assert fails(avl(resource_id=17)) == ("validate", "invalid_value")
    assert fails(avl(identifier=7)) == ("validate", "invalid_value")
    assert fix(avl(identifier="x" * 100)).resource_ref == "x" * 100
    assert fails(avl(identifier="x" * 101)) == ("validate", "value_out_of_range")


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"lat": ...}, "missing_field"),
        ({"lon": None}, "missing_field"),
        ({"time": ...}, "missing_field"),
        ({"time": ""}, "missing_field"),
        ({"lat": "60.1"}, "invalid_value"),
        ({"lon": True}, "invalid_value"),
        ({"lat": 90.0001}, "value_out_of_range"),
        ({"lat": -90.5}, "value_out_of_range"),
        ({"lon": 180.01}, "value_out_of_range"),
        ({"lat": 0.0, "lon": 0.0}, "value_out_of_range"),
        ({"lat": 0.00009, "lon": -0.00009}, "value_out_of_range"),
        ({"time": "2025-03-14T10:19:50"}, "invalid_value"),
        ({"speed": "fast"}, "invalid_value"),
        ({"heading": [1]}, "invalid_value"),
        ({"accuracy": False}, "invalid_value"),
        ({"altitude": "high"}, "invalid_value"),
        ({"source": 5}, "invalid_value"),
        ({"source": "s" * 51}, "value_out_of_range"),
    ],
)
def test_avl_errors(fields: dict[str, Any], code: str) -> None:
    assert fails(avl(**fields)) == ("validate", code)


def test_overflowing_numbers() -> None:
    # 1e400 reads as infinity: out of range for a coordinate, a bad speed
    text = json.dumps(avl(lon="LON", speed="SPEED"))
    assert fails(text.replace('"LON"', "1e400").replace('"SPEED"', "1")) == (
        "validate",
        "value_out_of_range",
    )
    f = fix(text.replace('"LON"', "24.9").replace('"SPEED"', "1e400"))
    assert (f.speed, f.flags) == (None, ["bad_speed"])


def test_null_island_is_only_the_tiny_box() -> None:
    assert fix(avl(lat=0.0001, lon=0.0)).lat == 0.0001
    assert fix(avl(lat=0.0, lon=-0.0001)).lon == -0.0001
    assert fix(avl(lat=90, lon=-180)).lat == 90.0


def test_avl_epoch_times() -> None:
    assert fix(avl(time=epoch_ms(NOW) - 2000)).time == NOW - timedelta(seconds=2)
    assert fix(avl(time=NOW.timestamp() - 3)).time == NOW - timedelta(seconds=3)


@pytest.mark.parametrize(
    ("offset", "ok"),
    [
        (timedelta(seconds=30), True),
        (timedelta(seconds=30, microseconds=1), False),
        (-timedelta(days=7), True),
        (-timedelta(days=7, microseconds=1), False),
    ],
)
def test_time_window_edges(offset: timedelta, ok: bool) -> None:
    payload = avl(time=(NOW + offset).isoformat())
    if ok:
        assert fix(payload).time == NOW + offset
    else:
        assert fails(payload) == ("validate", "timestamp_out_of_window")


@pytest.mark.parametrize(
    ("fields", "column", "stored", "flag"),
    [
        ({"speed": 0}, "speed", 0.0, None),
        ({"speed": 150}, "speed", 150.0, None),
        ({"speed": 150.01}, "speed", None, "bad_speed"),
        ({"speed": -0.1}, "speed", None, "bad_speed"),
        ({"heading": 0}, "heading", 0.0, None),
        ({"heading": 359.9}, "heading", 359.9, None),
        ({"heading": 360}, "heading", 0.0, None),
        ({"heading": 360.5}, "heading", None, "bad_heading"),
        ({"heading": -1}, "heading", None, "bad_heading"),
        ({"accuracy": 0}, "accuracy", 0.0, None),
        ({"accuracy": -3}, "accuracy", None, "bad_accuracy"),
    ],
)
def test_field_sanitising(
    fields: dict[str, Any], column: str, stored: float | None, flag: str | None
) -> None:
    f = fix(avl(**fields))
    assert getattr(f, column) == stored
    assert f.flags == ([flag] if flag else [])


def test_sanitising_keeps_the_fix_and_other_fields() -> None:
    f = fix(avl(speed=-1, heading=400, accuracy=-2))
    assert (f.speed, f.heading, f.accuracy) == (None, None, None)
    assert f.flags == ["bad_speed", "bad_heading", "bad_accuracy"]
    assert (f.lat, f.lon) == (60.1921, 24.9458)


def test_low_accuracy_by_radius() -> None:
    assert fix(avl(accuracy=100)).flags == []
    assert fix(avl(accuracy=100.5)).flags == ["low_accuracy"]
    assert fix(avl(accuracy=30), now=NOW).flags == []


# --- NMEA 0183 (section 6.2) ---------------------------------------------------------


def test_rmc_and_gga_merge_into_one_fix() -> None:
    f = fix(nmea(RMC, GGA), key=b"AMB-12")
    assert f.time == datetime(2025, 3, 14, 10, 19, 50, tzinfo=UTC)
    assert f.lat == pytest.approx(60 + 11.2345 / 60, abs=1e-9)
    assert f.lon == pytest.approx(24 + 56.7890 / 60, abs=1e-9)
    assert f.speed == pytest.approx(23.7 * 1852 / 3600, abs=1e-3)
    assert f.heading == 181.4
    assert f.accuracy is None
    assert (f.resource_ref, f.source) == ("AMB-12", "gps")
    assert f.metadata == {
        "format": "nmea",
        "fix_quality": 1,
        "satellites": 9,
        "hdop": 0.9,
        "altitude_m": 21.4,
        "received_at": "2025-03-14T10:20:00Z",
    }
    assert f.flags == []


def test_lf_only_and_lowercase_checksum() -> None:
    body = RMC
    text = f"${body}*{reduce(xor, body.encode(), 0):02x}\n"
    assert fix(text).time.second == 50


def test_sentences_of_other_times_are_separate_fixes() -> None:
    second = RMC.replace("101950.00", "101955.00").replace("6011.2345", "6011.3000")
    out = fixes(nmea(RMC, "GPGSV,3,1,11,03,03,111,00", second, GGA))
    assert [f.time.second for f in out] == [50, 55]
    assert out[0].metadata.get("hdop") == 0.9
    assert "hdop" not in out[1].metadata


def test_knots_to_metres_per_second() -> None:
    body = RMC.replace(",23.7,", ",1.0,")
    assert fix(nmea(body)).speed == pytest.approx(0.514, abs=1e-9)
    too_fast = RMC.replace(",23.7,", ",300.0,")
    f = fix(nmea(too_fast))
    assert (f.speed, f.flags) == (None, ["bad_speed"])


def test_course_360_is_north() -> None:
    assert fix(nmea(RMC.replace(",181.4,", ",360.0,"))).heading == 0.0
    f = fix(nmea(RMC.replace(",181.4,", ",361.0,")))
    assert (f.heading, f.flags) == (None, ["bad_heading"])


def test_southern_and_western_hemispheres() -> None:
    body = RMC.replace(",N,", ",S,").replace(",E,", ",W,")
    f = fix(nmea(body))
    assert f.lat == pytest.approx(-(60 + 11.2345 / 60), abs=1e-9)
    assert f.lon == pytest.approx(-(24 + 56.7890 / 60), abs=1e-9)


@pytest.mark.parametrize(
    "body",
    [
        RMC.replace("6011.2345", "6060.0000"),
        RMC.replace("02456.7890", "02475.5"),
        GGA.replace("6011.2345", "6099.1"),
    ],
)
def test_minutes_of_60_or_more_are_out_of_range(body: str) -> None:
    assert fails(nmea(body)) == ("validate", "value_out_of_range")


def test_minutes_just_under_60() -> None:
    assert fix(nmea(RMC.replace("6011.2345", "6059.9999"))).lat == pytest.approx(
        60 + 59.9999 / 60, abs=1e-9
    )


def test_degrees_out_of_range() -> None:
    assert fails(nmea(RMC.replace("6011.2345", "9100.0000"))) == ("validate", "value_out_of_range")
    assert fails(nmea(RMC.replace("02456.7890", "18100.0000"))) == (
        "validate",
        "value_out_of_range",
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (RMC.replace("101950.00", "106050.00"), "invalid_value"),
        (RMC.replace("101950.00", "1019"), "invalid_value"),
        (RMC.replace("140325", "320325"), "invalid_value"),
        (RMC.replace(",A,", ",X,"), "invalid_value"),
        (RMC.replace(",N,", ",Q,"), "invalid_value"),
        (RMC.replace(",23.7,", ",nan,"), "invalid_value"),
        (RMC.replace("6011.2345", "60I1.2345"), "invalid_value"),
        (GGA.replace(",09,", ",nine,"), "invalid_value"),
        (RMC.replace("101950.00", ""), "missing_field"),
    ],
)
def test_nmea_field_errors(body: str, code: str) -> None:
    assert fails(nmea(body)) == ("validate", code)


def test_checksums() -> None:
    assert fails(sentence(RMC, "00")) == ("decode", "bad_checksum")
    assert fails(f"${RMC}\r\n") == ("decode", "bad_checksum")
    assert fails(f"${RMC}*7\r\n") == ("decode", "bad_checksum")
    assert fails(f"${RMC}*ZZ\r\n") == ("decode", "bad_checksum")
    # one bad sentence spoils the message, and wins over field errors elsewhere
    broken = RMC.replace("140325", "991399")
    assert fails(nmea(broken) + sentence(GGA, "00")) == ("decode", "bad_checksum")


def test_sample_checksum_arithmetic() -> None:
    body = "GPRMC,102200.00,A,6011.3012,N,02456.5521,E,19.2,176.0,140325,,,A"
    assert sentence(body).endswith("*64")


def test_no_rmc_or_gga_is_unknown_format() -> None:
    assert fails(nmea("GPGSV,3,1,11,03,03,111,00", "GPVTG,054.7,T,034.4,M,005.5,N,010.2,K")) == (
        "decode",
        "unknown_format",
    )
    assert fails(nmea(RMC) + "garbage\r\n") == ("decode", "unknown_format")


@pytest.mark.parametrize(
    "body",
    [
        "GPRMC,102230.00,V,,,,,,,140325,,,N",
        RMC.replace(",A,", ",V,"),
        RMC[: -len("A")] + "N",
        GGA.replace(",E,1,", ",E,0,"),
        GGA.replace(",E,1,", ",E,8,"),
        "GPGGA,101950.00,,,,,1,09,0.9,21.4,M,17.8,M,,",
        "GPRMC,101950.00,A,,,,,0.0,0.0,140325,,,A",
    ],
)
def test_void_fixes_are_discarded(body: str) -> None:
    out = decode(nmea(body), key=b"AMB-12")
    assert isinstance(out, Discard)
    assert out.reason == "void_fix"


@pytest.mark.parametrize(
    "body",
    [
        # a receiver without a fix that leaves the status empty
        "GPRMC,102230.00,,,,,,,,140325,,,N",
        "GPRMC,102230.00,,6011.2345,N,02456.7890,E,0.0,0.0,140325,,,A",
        # NMEA 4.1: navigational status V (field 13) says the fix is not valid
        "GNRMC,102230.00,A,6011.2345,N,02456.7890,E,0.0,0.0,140325,,,A,V",
        "GNRMC,102230.00,V,,,,,,,140325,,,N,V",
        # mode N with status A: the mode decides
        "GNRMC,102230.00,A,6011.2345,N,02456.7890,E,0.0,0.0,140325,,,N,S",
    ],
)
def test_void_fixes_of_real_receivers_are_discarded_not_dead_lettered(body: str) -> None:
    out = decode(nmea(body), key=b"AMB-12")
    assert isinstance(out, Discard)
    assert out.reason == "void_fix"


@pytest.mark.parametrize("nav_status", ["S", "C", "U"])
def test_nmea_41_navigational_status_other_than_v_keeps_the_fix(nav_status: str) -> None:
    got = fix(nmea(RMC + "," + nav_status))
    assert (round(got.lat, 6), round(got.lon, 6)) == (60.187242, 24.946483)


def test_rmc_status_other_than_a_v_or_empty_is_invalid() -> None:
    assert fails(nmea(RMC.replace(",A,", ",X,", 1))) == ("validate", "invalid_value")


def test_void_gga_voids_its_rmc() -> None:
    out = decode(nmea(RMC, GGA.replace(",E,1,", ",E,0,")))
    assert isinstance(out, Discard)
    assert out.reason == "void_fix"


def test_void_fix_next_to_a_usable_one_is_dropped() -> None:
    void = "GPRMC,101955.00,V,,,,,,,140325,,,N"
    out = fixes(nmea(RMC, void))
    assert [f.time.second for f in out] == [50]


def test_void_fix_needs_no_key() -> None:
    out = decode(nmea("GPRMC,102230.00,V,,,,,,,140325,,,N"), key=None)
    assert isinstance(out, Discard)
    assert fails(nmea(RMC), key=None) == ("validate", "missing_field")


@pytest.mark.parametrize(
    ("body", "estimated"),
    [
        (RMC[:-1] + "E", True),
        (RMC[:-1] + "M", True),
        (RMC[:-1] + "D", False),
        (GGA.replace(",E,1,", ",E,6,"), True),
        (GGA.replace(",E,1,", ",E,7,"), True),
        (GGA.replace(",E,1,", ",E,2,"), False),
        (GGA.replace(",E,1,", ",E,4,"), False),
    ],
)
def test_estimated_flag(body: str, estimated: bool) -> None:
    f = fix(nmea(body))
    assert ("estimated" in f.flags) is estimated
    assert f.flags == (["estimated"] if estimated else [])


@pytest.mark.parametrize(
    ("body", "low"),
    [
        (GGA.replace(",09,0.9,", ",09,5.0,"), False),
        (GGA.replace(",09,0.9,", ",09,5.1,"), True),
        (GGA.replace(",09,0.9,", ",04,0.9,"), False),
        (GGA.replace(",09,0.9,", ",03,0.9,"), True),
    ],
)
def test_low_accuracy_by_hdop_and_satellites(body: str, low: bool) -> None:
    assert fix(nmea(body)).flags == (["low_accuracy"] if low else [])


def test_lone_gga_takes_the_nearest_date() -> None:
    # Kafka time just after midnight: 23:59:58 belongs to the previous day
    kafka = datetime(2025, 3, 15, 0, 0, 1, tzinfo=UTC)
    body = GGA.replace("101950.00", "235958.00")
    f = fix(nmea(body), at=kafka, now=kafka)
    assert f.time == datetime(2025, 3, 14, 23, 59, 58, tzinfo=UTC)
    # and just before midnight, 00:00:02 belongs to the next day
    kafka = datetime(2025, 3, 14, 23, 59, 59, tzinfo=UTC)
    f = fix(nmea(GGA.replace("101950.00", "000002.00")), at=kafka, now=kafka)
    assert f.time == datetime(2025, 3, 15, 0, 0, 2, tzinfo=UTC)
    f = fix(nmea(GGA))
    assert f.time == datetime(2025, 3, 14, 10, 19, 50, tzinfo=UTC)


def test_lone_gga_fields() -> None:
    f = fix(nmea(GGA))
    assert (f.speed, f.heading) == (None, None)
    assert f.metadata["fix_quality"] == 1
    assert f.metadata["altitude_m"] == 21.4


def test_rmc_date_wins_over_the_kafka_date() -> None:
    assert fix(nmea(RMC.replace("140325", "130325"))).time == datetime(
        2025, 3, 13, 10, 19, 50, tzinfo=UTC
    )
    assert fails(nmea(RMC.replace("140325", "060325"))) == ("validate", "timestamp_out_of_window")


def test_fractional_seconds() -> None:
    f = fix(nmea(RMC.replace("101950.00", "101950.25")))
    assert f.time == datetime(2025, 3, 14, 10, 19, 50, 250000, tzinfo=UTC)


def test_nmea_window() -> None:
    late = RMC.replace("101950.00", "102031.00")
    assert fails(nmea(late)) == ("validate", "timestamp_out_of_window")
    assert fix(nmea(RMC.replace("101950.00", "102030.00"))).time.minute == 20


def test_nmea_null_island() -> None:
    body = "GPRMC,101950.00,A,0000.0000,N,00000.0000,E,0.0,0.0,140325,,,A"
    assert fails(nmea(body)) == ("validate", "value_out_of_range")


def test_repeated_sentence_for_the_same_time_adds_nothing() -> None:
    again = RMC.replace("6011.2345", "6012.0000").replace(",23.7,", ",1.0,")
    f = fix(nmea(RMC, again, GGA, GGA.replace(",09,", ",03,")))
    assert f.lat == pytest.approx(60 + 11.2345 / 60, abs=1e-9)
    assert f.speed == pytest.approx(12.192, abs=1e-9)
    assert f.metadata["satellites"] == 9


# --- the per-fix fast path against the field rules ------------------------------


def _number(obj: dict[str, Any], field: str, what: str) -> float | None:
    value = obj.get(field)
    if value is None:
        return None
    if type(value) is not int and type(value) is not float:
        raise ValidationError("invalid_value", f"{what}.{field}: expected a number")
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _by_the_rules(obj: dict[str, Any], ctx: Context) -> LocationFix:
    """One AVL fix, each field through its rule in turn (docs/formats.md 6.1, 6.3)."""
    what = "fix"
    lat, lon = _number(obj, "lat", what), _number(obj, "lon", what)
    if lat is None or lon is None:
        raise ValidationError("missing_field", f"{what}: lat and lon are required")
    check_position(lat, lon, what)
    if obj.get("time") is None or obj["time"] == "":
        raise ValidationError("missing_field", f"{what}.time is required")
    when = ctx.in_window(parse_timestamp(obj["time"], f"{what}.time"), what)
    flags: list[str] = []
    speed = checked_speed(_number(obj, "speed", what), flags)
    heading = checked_heading(_number(obj, "heading", what), flags)
    accuracy = checked_accuracy(_number(obj, "accuracy", what), flags)
    altitude = _number(obj, "altitude", what)
    if altitude is not None and not math.isfinite(altitude):
        altitude, _ = None, flags.append("bad_altitude")
    if accuracy is not None and accuracy > SETTINGS.max_accuracy_m:
        flags.append("low_accuracy")
    metadata: dict[str, Any] = {"format": "avl"}
    if altitude is not None:
        metadata["altitude_m"] = altitude
    metadata["received_at"] = ctx.received_at
    return LocationFix(when, "ENG-7", lat, lon, speed, heading, accuracy, "gps", metadata, flags)


#: values at the edges of the field rules, and of the types JSON can carry
_EDGES = [
    ..., None, True, False, 0, -1, 5, 150, 151, 360, 361, 10**400, 0.0, -0.0, -1e-9, 1e-5,
    89.99, 90.0, 150.0, 150.001, 359.9, 360.0, 360.5, 1e308, "", "5", [], {},
]  # fmt: skip
_ANY_VALUE = (
    st.sampled_from(_EDGES)
    | st.integers(min_value=-1000, max_value=1000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=3)
)
_TIMES = (
    st.sampled_from(
        [
            "2025-03-14T10:19:50Z",
            "2025-03-14T10:19:50.25+00:00",
            "2025-03-14T12:19:50+02:00",
            "2025-03-14T10:19:50",
            " 2025-03-14T10:19:50Z ",
            "2025-03-14T10:19:50-00:00",
            "2024-03-14T10:19:50Z",
            "yesterday",
            "",
            1741947590,
            1741947590123,
        ]
    )
    | _ANY_VALUE
)


def _both_ways(payload: dict[str, Any]) -> None:
    text = json.dumps(payload)
    ctx = Context(raw(text.encode()), SETTINGS, NOW)
    try:
        if "\\u0000" in text:
            check_no_nul(payload)  # the message-wide rule comes first
        expected: Any = _by_the_rules(payload, ctx)
    except InputError as exc:
        expected = (type(exc), exc.error_code, str(exc))
    try:
        got: Any = fix(payload)
    except InputError as exc:
        got = (type(exc), exc.error_code, str(exc))
    assert got == expected
    if isinstance(got, LocationFix):
        assert got.time.tzinfo is UTC
        # 5 == 5.0: equality alone would not tell an int that slipped through
        for name in ("lat", "lon", "speed", "heading", "accuracy"):
            value = getattr(got, name)
            assert value is None or type(value) is float, (name, value)


@pytest.mark.parametrize("field", ["speed", "heading", "accuracy", "altitude", "lat", "lon"])
@pytest.mark.parametrize("value", _EDGES, ids=repr)
def test_each_edge_value_takes_the_field_rules(field: str, value: Any) -> None:
    _both_ways(avl(**{field: value}))


@settings(max_examples=400, deadline=None)
@given(speed=_ANY_VALUE, heading=_ANY_VALUE, accuracy=_ANY_VALUE, altitude=_ANY_VALUE)
def test_the_fast_path_of_a_fix_follows_the_field_rules(**fields: Any) -> None:
    _both_ways(avl(**fields))


@settings(max_examples=400, deadline=None)
@given(
    lat=st.floats(min_value=59.0, max_value=61.0) | _ANY_VALUE,
    lon=st.floats(min_value=24.0, max_value=26.0) | _ANY_VALUE,
    time=_TIMES,
)
def test_the_fast_path_of_position_and_time_follows_the_field_rules(**fields: Any) -> None:
    _both_ways(avl(**fields))


VOID_GGA = "GPGGA,101950.00,,,,,0,00,,,,,,,"


def test_a_batch_keeps_order_and_returns_errors_as_values() -> None:
    good = raw(json.dumps(avl()).encode())
    records = [good, raw(b"{not json"), raw(None), raw(nmea(VOID_GGA).encode()), good]
    out = decode_gps_batch(records, SETTINGS, NOW)
    assert [type(o).__name__ for o in out] == ["list", "DecodeError", "Discard", "Discard", "list"]
    assert out[0] == out[4] == decode_gps(good, SETTINGS, NOW)


def test_each_record_of_a_batch_carries_its_own_receive_time() -> None:
    times = [NOW - timedelta(seconds=3), NOW - timedelta(milliseconds=1500), NOW]
    records = [raw(json.dumps(avl()).encode(), at=t) for t in times]
    out = decode_gps_batch(records, SETTINGS, NOW)
    assert out == [decode_gps(r, SETTINGS, NOW) for r in records]
    received = [fixes[0].metadata["received_at"] for fixes in out]  # type: ignore[index]
    assert received == [iso_utc(t) for t in times]


@pytest.mark.parametrize("epoch", [10**18, -(10**30), 10**400])
def test_an_epoch_beyond_any_float_is_out_of_range(epoch: int) -> None:
    assert fails(avl(time=epoch)) == ("validate", "value_out_of_range")
