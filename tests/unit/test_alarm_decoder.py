"""alerts.alarm decoder (docs/formats.md 1) and its sample file."""

from __future__ import annotations

import json
import re
import string
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from my_dc09_spt.msg import dc03_msg, dc05_msg, dc09_msg  # type: ignore[import-untyped]

from pipeline.decoders.alarm.dc09 import crc16_arc
from pipeline.decoders.alarm.dc09_data import cid16_check_digit
from pipeline.decoders.alarm.decoder import decode_alarm
from pipeline.decoders.alarm.supervision import (
    LineChange,
    checkin_intervals,
    line_change_envelope,
)
from pipeline.decoders.envelope import NS_DEVICE
from pipeline.errors import InputError
from pipeline.settings import AlarmSettings
from schemas.canonical import CanonicalAlert, TelemetryRow
from schemas.intents import Discard, Intent, PatchAlert, SetRedis, StoreAlert, StoreTelemetry
from schemas.records import RawRecord
from tests.samples import alert_view, assert_subset, epoch_ms, load_fixtures, sample_records

FIXTURES = load_fixtures()
SETTINGS = AlarmSettings.model_validate(FIXTURES["config"]["alarm"])
SAMPLE_KEY = FIXTURES["config"]["alarm"]["accounts"]["5F21"]["key"]
NOW = datetime(2025, 3, 14, 9, 15, 3, tzinfo=UTC)
STAMP = "_09:15:02,03-14-2025"
STAMP_TIME = datetime(2025, 3, 14, 9, 15, 2, tzinfo=UTC)


# --- builders ---------------------------------------------------------------------


def make_frame(body: str | bytes, *, length: str | None = None) -> bytes:
    raw = body.encode("ascii") if isinstance(body, str) else body
    length = length if length is not None else f"0{len(raw):03X}"
    return b"\n" + f"{crc16_arc(raw):04X}{length}".encode() + raw + b"\r"


def sia(data: str, *, seq: str = "0042", acct: str = "4711", tail: str = STAMP) -> bytes:
    return make_frame(f'"SIA-DCS"{seq}R2L3#{acct}[{data}]{tail}')


def cid(data: str, *, seq: str = "0043", acct: str = "4711", tail: str = STAMP) -> bytes:
    return make_frame(f'"ADM-CID"{seq}R2L3#{acct}[{data}]{tail}')


def encrypt(plaintext: str, key_hex: str = SAMPLE_KEY) -> str:
    data = ("p" * (-len(plaintext) % 16) + plaintext).encode("ascii")
    enc = Cipher(algorithms.AES(bytes.fromhex(key_hex)), modes.CBC(bytes(16))).encryptor()
    return (enc.update(data) + enc.finalize()).hex().upper()


def encrypted_frame(cipher_hex: str, *, token: str = "SIA-DCS", acct: str = "5F21") -> bytes:
    return make_frame(f'"*{token}"0007L1#{acct}[{cipher_hex}')


def envelope_value(frame_value: bytes | str, **fields: Any) -> bytes:
    """A receiver envelope; a field given as ``...`` is left out."""
    text = frame_value.decode("utf-8") if isinstance(frame_value, bytes) else frame_value
    obj: dict[str, Any] = {
        "receiver": "rcv-north-1",
        "received_at": "2025-03-14T09:15:02.840Z",
        "frame": text,
    }
    obj.update(fields)
    return json.dumps({k: v for k, v in obj.items() if v is not ...}).encode()


def record(value: bytes | None, *, offset: int = 7, when: datetime = NOW) -> RawRecord:
    return RawRecord("alerts.alarm", 0, offset, epoch_ms(when), b"4711", value)


def decode(
    value: bytes | None, settings: AlarmSettings = SETTINGS, now: datetime = NOW, **kw: Any
) -> list[Intent]:
    return decode_alarm(record(value), settings, now, **kw)


def decode_error(value: bytes | None, settings: AlarmSettings = SETTINGS, **kw: Any) -> InputError:
    with pytest.raises(InputError) as err:
        decode(value, settings, **kw)
    return err.value


def only_alert(intents: list[Intent]) -> CanonicalAlert:
    assert len(intents) == 1, intents
    assert isinstance(intents[0], StoreAlert), intents
    return intents[0].alert


def only_patch(intents: list[Intent]) -> PatchAlert:
    assert len(intents) == 1, intents
    assert isinstance(intents[0], PatchAlert), intents
    return intents[0]


def rows_of(intents: list[Intent] | tuple[Intent, ...]) -> list[TelemetryRow]:
    assert not any(isinstance(i, StoreAlert | PatchAlert) for i in intents), intents
    return [row for i in intents if isinstance(i, StoreTelemetry) for row in i.rows]


def settings_with(accounts: dict[str, dict[str, Any]]) -> AlarmSettings:
    """The sample configuration plus these ``alarm.accounts`` entries."""
    base = FIXTURES["config"]["alarm"]
    merged = {**base["accounts"], **accounts}
    return AlarmSettings.model_validate({**base, "accounts": merged})


def device_of(site: str) -> uuid.UUID:
    return uuid.uuid5(NS_DEVICE, "alarm:" + site)


# --- the sample file, fed in order ------------------------------------------------


RECORDS = sample_records("alerts.alarm")


def row_view(row: TelemetryRow) -> dict[str, Any]:
    view = row._asdict()
    view["device_id"] = str(row.device_id)
    return view


def replay(index: int) -> tuple[dict[str, CanonicalAlert], list[Intent] | InputError]:
    """Feed lines 0..index in order, clock at each line's timestamp; the alerts
    stored before ``index`` and what line ``index`` produced."""
    stored: dict[str, CanonicalAlert] = {}
    result: list[Intent] | InputError = []
    for i, sample in enumerate(RECORDS[: index + 1]):
        try:
            result = decode_alarm(sample.record, SETTINGS, sample.now)
        except InputError as exc:
            result = exc
            continue
        if i < index:
            for intent in result:
                if isinstance(intent, StoreAlert):
                    stored.setdefault(intent.alert.external_id, intent.alert)
    return stored, result


@pytest.mark.parametrize("index", range(len(RECORDS)))
def test_sample_line(index: int) -> None:
    expect = RECORDS[index].expect
    stored, result = replay(index)
    outcome = expect["outcome"]
    if outcome == "dlq":
        assert isinstance(result, InputError), result
        assert (result.stage, result.error_code) == (expect["stage"], expect["error_code"])
        return
    assert not isinstance(result, InputError), result
    if outcome in ("alert", "duplicate"):
        alert = only_alert(result)
        if outcome == "alert":
            assert alert.external_id not in stored
            assert_subset(expect["alert"], alert_view(alert), "alert")
        else:
            assert (alert.source, alert.external_id) == (expect["source"], expect["external_id"])
            assert alert.external_id in stored
    elif outcome == "restore":
        patch = only_patch(result)
        target = stored[expect["restores"]["external_id"]]
        assert (patch.kind, patch.source) == ("restore", expect["restores"]["source"])
        assert patch.match_key == target.metadata["match_key"]
        assert_subset(expect["metadata_patch"], patch.metadata_patch, "metadata_patch")
    elif outcome == "activity":
        rows = rows_of(result)
        assert len(rows) == len(expect["telemetry"])
        for i, (want, row) in enumerate(zip(expect["telemetry"], rows, strict=True)):
            assert_subset(want, row_view(row), f"telemetry[{i}]")
        redis = {i.key: i.value for i in result if isinstance(i, SetRedis)}
        assert_subset(expect.get("redis", {}), redis, "redis")
        assert set(redis) == set(expect.get("redis", {}))
    else:
        pytest.fail(f"outcome {outcome} not expected on alerts.alarm")


def test_sample_bad_crc_reason_names_both_values() -> None:
    line = next(i for i, s in enumerate(RECORDS) if s.expect.get("error_code") == "bad_checksum")
    _, result = replay(line)
    assert isinstance(result, InputError)
    assert result.reason == "DC-09 CRC field 0660 does not match computed E660"


# --- classification: Contact ID (1.7) --------------------------------------------

CID_ALERT_TABLE: list[tuple[str, int, tuple[int, ...]]] = [
    ("medical", 1, (100, 101)),
    ("fire", 1, (110, 111, 112, 113, 114, 115, 116, 117)),
    ("fire", 2, (118,)),
    ("panic", 1, (120, 122, 123)),
    ("duress", 1, (121, 124, 125)),
    ("intrusion", 2, (130, 131, 132, 133, 134, 135, 136, 138, 139, 140, 146)),
    ("tamper", 3, (137, 144, 145)),
    ("other", 2, (150,)),
    ("gas", 1, (151, 162)),
    ("water", 3, (154,)),
    ("temperature", 3, (158, 159)),
    ("trouble", 3, (373,)),
    ("trouble", 4, (608,)),
    ("supervisory", 3, (654,)),
]


def cid_expectation(code: int) -> tuple[str, str, int | None, bool]:
    """("alert", type, severity, unmapped) or ("activity", metric, None, False), per 1.7."""
    for type_, sev, codes in CID_ALERT_TABLE:
        if code in codes:
            return ("alert", type_, sev, False)
    ranges = [
        (100, 199, ("alert", "other", 2, True)),
        (200, 299, ("alert", "supervisory", 3, False)),
        (300, 399, ("alert", "trouble", 4, False)),
        (400, 499, ("activity", "alarm.open_close", None, False)),
        (500, 599, ("activity", "alarm.bypass", None, False)),
        (600, 699, ("activity", "alarm.test", None, False)),
    ]
    for low, high, result in ranges:
        if low <= code <= high:
            return result
    return ("activity", "alarm.event", None, False)


@pytest.mark.parametrize("code", range(0, 1000))
def test_cid_classification_every_code(code: int) -> None:
    kind, name, severity, unmapped = cid_expectation(code)
    intents = decode(cid(f"#4711|1{code:03d} 01 004"))
    if kind == "alert":
        alert = only_alert(intents)
        assert (alert.type, alert.severity) == (name, severity)
        assert alert.metadata.get("unmapped", False) is unmapped
        assert alert.metadata["cid"] == {
            "qualifier": 1,
            "code": f"{code:03d}",
            "partition": "01",
            "zone": "004",
        }
    else:
        (row,) = rows_of(intents)
        assert row.metric_name == name
        assert row.metric_text == f"cid:1{code:03d}"


def test_cid_602_periodic_test_is_never_an_alert() -> None:
    for q in (1, 6):
        (row,) = rows_of(decode(cid(f"#4711|{q}602 00 000")))
        assert row.metric_name == "alarm.test"


def test_cid_hex_event_code_is_an_event() -> None:
    (row,) = rows_of(decode(cid("#4711|11B0 01 004")))
    assert (row.metric_name, row.metric_text) == ("alarm.event", "cid:11B0")


# --- classification: SIA (1.7) ----------------------------------------------------

SIA_ALERTS: dict[str, tuple[str, int]] = {
    **dict.fromkeys(["FA", "SA", "KA"], ("fire", 1)),
    **dict.fromkeys(["MA", "QA"], ("medical", 1)),
    "PA": ("panic", 1),
    "HA": ("duress", 1),
    "GA": ("gas", 1),
    "BV": ("intrusion", 1),
    "BA": ("intrusion", 2),
    "EA": ("intrusion", 3),
    **dict.fromkeys(["TA", "JA"], ("tamper", 3)),
    "UA": ("other", 2),
    "WA": ("water", 3),
    "ZA": ("temperature", 3),
    **dict.fromkeys(["FS", "NA"], ("supervisory", 3)),
    "FT": ("trouble", 3),
    "YM": ("trouble", 4),
    # restored by YK, and a 3xx trouble in the Contact ID table
    "YC": ("trouble", 4),
}
SIA_ACTIVITY: dict[str, str] = {
    **{f + c: "alarm.open_close" for f in "OC" for c in string.ascii_uppercase},
    **dict.fromkeys(["RP", "RX", "TX"], "alarm.test"),
    **dict.fromkeys(["RR", "DG", "JL", "ZZ"], "alarm.event"),
}


def _restore_codes() -> dict[str, tuple[str, ...]]:
    codes: dict[str, tuple[str, ...]] = {}
    for family in "BFGHKMPQSTUWZ":
        codes[family + "H"] = (family + "A",)
        codes[family + "R"] = (family + "A",)
        codes[family + "J"] = (family + "T",)
    codes.update(
        {
            "AR": ("AT",),
            "YR": ("YT", "YM"),
            "YK": ("YC",),
            "LR": ("LT",),
            "NR": ("NT",),
            "XR": ("XT",),
            "ER": ("ET",),
        }
    )
    return codes


SIA_RESTORES = _restore_codes()


def _generic_sia() -> dict[str, tuple[str, str, int | None, bool]]:
    """Codes decided by their class letter alone (unknown ?A, other ?S/?T, ?X, ?B, ?U)."""
    by_class: dict[str, tuple[str, str, int | None, bool]] = {
        "A": ("alert", "other", 2, True),
        "S": ("alert", "supervisory", 3, False),
        "T": ("alert", "trouble", 4, False),
        "X": ("activity", "alarm.test", None, False),
        "B": ("activity", "alarm.bypass", None, False),
        "U": ("activity", "alarm.bypass", None, False),
    }
    out = {}
    for family in string.ascii_uppercase:
        for cls, result in by_class.items():
            code = family + cls
            if family not in "OC" and code not in SIA_ALERTS and code not in SIA_RESTORES:
                out[code] = result
    return out


SIA_GENERIC = _generic_sia()


@pytest.mark.parametrize(("code", "expected"), sorted(SIA_ALERTS.items()))
def test_sia_alert_table(code: str, expected: tuple[str, int]) -> None:
    alert = only_alert(decode(sia(f"#4711|Nri2/{code}017")))
    assert (alert.type, alert.severity) == expected
    assert "unmapped" not in alert.metadata
    assert alert.metadata["match_key"] == f"4711|sia:{code}|2|17"
    assert alert.external_id == f"dc09:4711:0042:sia-{code}-17-a2:2025031409"


@pytest.mark.parametrize(("code", "metric"), sorted(SIA_ACTIVITY.items()))
def test_sia_activity_table(code: str, metric: str) -> None:
    (row,) = rows_of(decode(sia(f"#4711|Nri2/{code}005")))
    assert (row.metric_name, row.metric_text, row.metric_value) == (metric, f"sia:{code}", 5)


@pytest.mark.parametrize(("code", "expected"), sorted(SIA_GENERIC.items()))
def test_sia_class_letter_rules(code: str, expected: tuple[str, str, int | None, bool]) -> None:
    kind, name, severity, unmapped = expected
    intents = decode(sia(f"#4711|Nri2/{code}017"))
    if kind == "alert":
        alert = only_alert(intents)
        assert (alert.type, alert.severity) == (name, severity)
        assert alert.metadata.get("unmapped", False) is unmapped
    else:
        (row,) = rows_of(intents)
        assert row.metric_name == name


@pytest.mark.parametrize("code", ["OP", "CL", "OA", "CA", "OG", "CG", "CF", "OR", "CR"])
def test_open_close_as_alerts(code: str) -> None:
    settings = AlarmSettings(accounts=SETTINGS.accounts, open_close_as_alerts=True)
    alert = only_alert(decode(sia(f"#4711|Nri1/{code}005"), settings))
    assert (alert.type, alert.severity) == ("open_close", 5)
    assert alert.title == "Open close - account 4711, area 1, user 5"


# --- restores and qualifiers (1.8) ------------------------------------------------


def _restore_chain(patch: PatchAlert) -> tuple[list[str], tuple[Intent, ...]]:
    keys = [patch.match_key or ""]
    miss = patch.on_miss
    while len(miss) == 1 and isinstance(miss[0], PatchAlert):
        keys.append(miss[0].match_key or "")
        miss = miss[0].on_miss
    return keys, miss


@pytest.mark.parametrize(("code", "targets"), sorted(SIA_RESTORES.items()))
def test_sia_restore_mapping(code: str, targets: tuple[str, ...]) -> None:
    later = datetime(2025, 3, 14, 9, 31, 40, tzinfo=UTC)
    patch = only_patch(
        decode(sia(f"#4711|Nri2/{code}017", seq="0044", tail=f"_{later:%H:%M:%S,%m-%d-%Y}"))
    )
    alert_keys = [
        only_alert(decode(sia(f"#4711|Nri2/{target}017"))).metadata["match_key"]
        for target in targets
    ]
    keys, miss = _restore_chain(patch)
    assert keys == alert_keys
    assert (patch.kind, patch.source) == ("restore", "alarm_system")
    assert patch.metadata_patch == {
        "restored_at": "2025-03-14T09:31:40Z",
        "restore_external_id": f"dc09:4711:0044:sia-{code}-17-a2:2025031409",
    }
    (row,) = rows_of(miss)
    assert (row.metric_name, row.metric_text) == ("alarm.restore", f"sia:{code}")
    assert row.metadata["unmatched"] is True
    assert row.time == later


def test_cid_restore_matches_the_alarm() -> None:
    alert = only_alert(decode(cid("#4711|1110 01 004")))
    patch = only_patch(decode(cid("#4711|3110 01 004", seq="0044")))
    assert patch.kind == "restore"
    assert patch.match_key == alert.metadata["match_key"]
    assert (
        patch.metadata_patch["restore_external_id"] == "dc09:4711:0044:cid-3110-01-004:2025031409"
    )
    (row,) = rows_of(patch.on_miss)
    assert (row.metric_name, row.metric_text, row.metric_value) == ("alarm.restore", "cid:3110", 4)
    assert row.metadata["unmatched"] is True


def test_restore_does_not_match_another_zone() -> None:
    alert = only_alert(decode(cid("#4711|1110 01 004")))
    patch = only_patch(decode(cid("#4711|3110 01 005")))
    assert patch.match_key != alert.metadata["match_key"]


@pytest.mark.parametrize(("q", "action"), [(1, "opening"), (3, "closing")])
def test_cid_open_close_is_activity_by_user(q: int, action: str) -> None:
    (row,) = rows_of(decode(cid(f"#4711|{q}401 02 005")))
    assert (row.metric_name, row.metric_text, row.metric_value) == (
        "alarm.open_close",
        f"cid:{q}401",
        5,
    )
    assert row.metadata["area"] == 2, action


def test_cid_open_close_as_alerts_uses_user() -> None:
    settings = AlarmSettings(accounts=SETTINGS.accounts, open_close_as_alerts=True)
    for q in (1, 3):
        alert = only_alert(decode(cid(f"#4711|{q}401 02 005"), settings))
        assert (alert.type, alert.severity) == ("open_close", 5)
        assert alert.title == "Open close - account 4711, area 2, user 5"


def test_cid_still_present() -> None:
    first = only_alert(decode(cid("#4711|1110 01 004")))
    patch = only_patch(decode(cid("#4711|6110 01 004", seq="0050")))
    assert (patch.kind, patch.match_key) == ("still_present", first.metadata["match_key"])
    assert patch.metadata_patch == {"still_present_at": "2025-03-14T09:15:02Z"}
    (fallback,) = patch.on_miss
    assert isinstance(fallback, StoreAlert)
    alert = fallback.alert
    assert (alert.type, alert.severity) == ("fire", 1)
    assert alert.metadata["cid"]["qualifier"] == 6
    assert alert.metadata["match_key"] == first.metadata["match_key"]
    assert alert.external_id == "dc09:4711:0050:cid-6110-01-004:2025031409"


@pytest.mark.parametrize("q", ["0", "2", "4", "5", "7", "9"])
def test_cid_qualifier_not_1_3_6(q: str) -> None:
    err = decode_error(cid(f"#4711|{q}110 01 004"))
    assert (err.stage, err.error_code) == ("validate", "value_out_of_range")


# --- SIA data block (1.4) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "event_part", "ri", "user"),
    [
        ("Nri1/BA012", "sia-BA-12-a1", 1, None),
        ("Nid5ti10:30ri1BA012", "sia-BA-12-a1-u5", 1, 5),
        ("Nri1id5BA012", "sia-BA-12-a1-u5", 1, 5),
        ("Nti10:30/id5/ri1/BA012", "sia-BA-12-a1-u5", 1, 5),
        ("NBA012", "sia-BA-12-ax", None, None),
        ("Nri3/BA", "sia-BA-x-a3", 3, None),
    ],
)
def test_sia_modifiers_any_order(data: str, event_part: str, ri: int, user: int) -> None:
    alert = only_alert(decode(sia("#4711|" + data)))
    assert alert.metadata["sia"]["code"] == "BA"
    assert (alert.metadata["sia"]["ri"], alert.metadata["sia"]["id"]) == (ri, user)
    assert alert.external_id == f"dc09:4711:0042:{event_part}:2025031409"


def test_data_block_account_wins_over_header() -> None:
    alert = only_alert(decode(sia("#0A12|Nri1/BA012", acct="4711")))
    assert (alert.metadata["account"], alert.metadata["site"]) == ("0A12", "0A12")
    assert alert.external_id.startswith("dc09:0A12:")


def test_header_account_when_data_has_none() -> None:
    alert = only_alert(decode(sia("Nri1/BA012", acct="4a11")))
    assert alert.metadata["site"] == "4A11"


def test_frame_without_any_account_is_missing_field() -> None:
    err = decode_error(make_frame('"SIA-DCS"0042R2L3[Nri1/BA012]' + STAMP))
    assert (err.stage, err.error_code) == ("validate", "missing_field")


@pytest.mark.parametrize(
    ("data", "code"), [("#4711|N", "missing_field"), ("#4711|Q1", "invalid_value")]
)
def test_sia_data_errors(data: str, code: str) -> None:
    assert decode_error(sia(data)).error_code == code


def test_sia_text_message_is_activity() -> None:
    (row,) = rows_of(decode(sia("#4711|AService visit at 10")))
    assert row.metric_name == "alarm.text"
    assert row.metadata["text"] == "Service visit at 10"


def test_title_description_and_metadata() -> None:
    xdata = "[IGlass broken][LEast wing][OBuilding C][R204][SDepot][Vhttps://v.example/1]"
    value = sia("#4711|Nri2^Lobby^/id7^Ann^BA017^Back door^|Aextra", tail=xdata + STAMP)
    alert = only_alert(decode(value))
    assert alert.title == "Intrusion - account 4711, area 2, zone 17"
    assert alert.description is not None
    for part in ("Burglary", "Lobby", "Ann", "Back door", "Glass broken", "East wing"):
        assert part in alert.description
    for part in ("Building C", "204", "Depot"):
        assert part in alert.description
    meta = alert.metadata
    assert meta["sia"]["tail"] == "|Aextra"
    assert meta["sia"]["text"] == "Back door"
    assert meta["verification_url"] == "https://v.example/1"
    assert meta["xdata"]["R"] == "204"
    assert meta["dc09"] == {
        "token": "SIA-DCS",
        "seq": "0042",
        "rcvr": "2",
        "line": "3",
        "encrypted": False,
        "clock_skew_s": -1.0,
    }
    assert meta["ingest"] == {"topic": "alerts.alarm", "partition": 0, "offset": 7}
    assert (meta["receiver"], meta["occurred_at"]) == (None, "2025-03-14T09:15:02Z")
    assert alert.raw_payload == {
        "format": "dc09",
        "frame": value.decode().strip(),
        "receiver": None,
    }
    assert (alert.received_at, alert.processed_at) == (NOW, NOW)


def test_title_omits_absent_parts() -> None:
    alert = only_alert(decode(cid("#4711|1110 00 000")))
    assert alert.title == "Fire - account 4711"


# --- frame-level rules ------------------------------------------------------------


def test_length_tolerance() -> None:
    body = '"SIA-DCS"0042R2L3#4711[#4711|Nri2/BA017]' + STAMP
    n = len(body)
    for length in (f"0{n:03X}", f"{n:04d}"):
        alert = only_alert(decode(make_frame(body, length=length)))
        assert "length_mismatch" not in alert.metadata["dc09"]
    alert = only_alert(decode(make_frame(body, length="0001")))
    assert alert.metadata["dc09"]["length_mismatch"] is True


@pytest.mark.parametrize(
    "value",
    [
        b"ACK",
        b"NAK",
        make_frame('"ACK"0042R2L3#4711[]'),
        make_frame('"NAK"0000R0L0[]_09:15:02,03-14-2025'),
        make_frame('"DUH"0042R2L3#4711[]'),
        envelope_value("ACK"),
        b"471118110001003C",
    ],
)
def test_reply_tokens_and_non_frames_are_unknown_format(value: bytes) -> None:
    err = decode_error(value)
    assert (err.stage, err.error_code) == ("decode", "unknown_format")


def test_windows_1252_in_texts_and_xdata() -> None:
    body = '"SIA-DCS"0042R2L3#4711[#4711|Nri1/BA012^Kellar\u00e4^][RVarasto \u00f6]' + STAMP
    alert = only_alert(decode(make_frame(body.encode("cp1252"))))
    assert alert.description is not None
    assert "Kellar\u00e4" in alert.description
    assert "Varasto \u00f6" in alert.description
    assert alert.metadata["xdata"]["R"] == "Varasto \u00f6"


def test_utf8_text_in_envelope_frame() -> None:
    body = '"SIA-DCS"0042R2L3#4711[#4711|Nri1/BA012^Kellar\u00e4^]' + STAMP
    for encoding in ("utf-8", "cp1252"):
        frame = make_frame(body.encode(encoding)).decode(encoding)
        alert = only_alert(decode(envelope_value(frame)))
        assert alert.metadata["sia"]["text"] == "Kellar\u00e4"


@pytest.mark.parametrize(
    ("x", "y", "lon", "lat"),
    [
        ("24.93712", "60.16952", 24.93712, 60.16952),
        ("024E56.2272", "60N10.1712", 24 + 56.2272 / 60, 60 + 10.1712 / 60),
        ("58W22.5", "34S36.0", -(58 + 22.5 / 60), -(34 + 36.0 / 60)),
    ],
)
def test_xdata_coordinates(x: str, y: str, lon: float, lat: float) -> None:
    alert = only_alert(decode(cid("#4711|1110 01 004", tail=f"[X{x}][Y{y}]" + STAMP)))
    assert alert.location is not None
    assert alert.location.lon == pytest.approx(lon, abs=1e-6)
    assert alert.location.lat == pytest.approx(lat, abs=1e-6)


@pytest.mark.parametrize(("x", "y"), [("24.9", "95.0"), ("190", "60.1"), ("24.9", "60N75.0")])
def test_out_of_range_coordinates_are_ignored(x: str, y: str) -> None:
    tail = f"[X{x}][Y{y}]" + STAMP
    alert = only_alert(decode(cid("#4711|1110 01 004", tail=tail)))
    assert alert.location is None
    assert alert.metadata["xdata"]["Y"] == y
    configured = settings_with({"4711": {"location": [25.0, 60.2]}})
    fallback = only_alert(decode(cid("#4711|1110 01 004", tail=tail), configured))
    assert fallback.location is not None
    assert (fallback.location.lon, fallback.location.lat) == (
        25.0,
        60.2,
    )


def test_configured_site_address_and_location() -> None:
    settings = settings_with(
        {
            "4711": {"site": "hq-east", "address": {"street": "Main 1"}, "location": [25.0, 60.2]},
            "L3#4711": {"site": "HQ-L3"},
        }
    )
    alert = only_alert(decode(sia("#4711|Nri2/BA017"), settings))
    assert alert.metadata["site"] == "HQ-L3"
    assert alert.external_id == "dc09:HQ-L3:0042:sia-BA-17-a2:2025031409"
    assert alert.title.startswith("Intrusion - account HQ-L3")
    assert alert.address == {"street": "Main 1"}
    assert alert.location is not None
    assert alert.location.lat == 60.2


# --- external_id buckets (1.9) ----------------------------------------------------


def test_bucket_is_the_event_hour() -> None:
    a = only_alert(decode(sia("#4711|Nri2/BA017", tail="_09:00:00,03-14-2025")))
    b = only_alert(decode(sia("#4711|Nri2/BA017", tail="_09:59:59,03-14-2025")))
    c = only_alert(decode(sia("#4711|Nri2/BA017", tail="_10:00:00,03-14-2025")))
    assert a.external_id == b.external_id == "dc09:4711:0042:sia-BA-17-a2:2025031409"
    assert c.external_id == "dc09:4711:0042:sia-BA-17-a2:2025031410"


def test_bucket_is_the_minute_when_seq_is_0000() -> None:
    a = only_alert(decode(sia("#4711|Nri2/BA017", seq="0000", tail="_09:15:02,03-14-2025")))
    b = only_alert(decode(sia("#4711|Nri2/BA017", seq="0000", tail="_09:16:02,03-14-2025")))
    assert a.external_id == "dc09:4711:0000:sia-BA-17-a2:202503140915"
    assert b.external_id.endswith(":202503140916")


def test_xdata_h_wins_over_stamp() -> None:
    tail = "[H08:59:58,03-14-2025]_09:00:03,03-14-2025"
    alert = only_alert(decode(sia("#4711|Nri2/BA017", tail=tail)))
    assert alert.external_id.endswith(":2025031408")
    assert alert.metadata["occurred_at"] == "2025-03-14T08:59:58Z"


def test_unparseable_h_falls_back_to_stamp() -> None:
    alert = only_alert(decode(sia("#4711|Nri2/BA017", tail="[Hsoon]" + STAMP)))
    assert alert.metadata["occurred_at"] == "2025-03-14T09:15:02Z"
    assert alert.metadata["xdata"]["H"] == "soon"


def test_without_stamp_the_received_at_decides() -> None:
    frame = sia("#4711|Nri2/BA017", tail="")
    raw = only_alert(decode(frame, now=NOW))
    assert raw.metadata["occurred_at"] == "2025-03-14T09:15:03Z"
    enveloped = only_alert(decode(envelope_value(frame, received_at="2025-03-14T10:00:01+01:00")))
    assert enveloped.external_id.endswith(":2025031409")
    assert enveloped.received_at == datetime(2025, 3, 14, 9, 0, 1, tzinfo=UTC)


def test_copies_over_another_path_share_the_external_id() -> None:
    first = only_alert(decode(cid("#4711|1110 01 004", seq="0043")))
    body = '"ADM-CID"0043R7L1#4711[#4711|1110 01 004]_09:45:41,03-14-2025'
    backup = only_alert(decode(envelope_value(make_frame(body), receiver="rcv-south-2")))
    assert backup.external_id == first.external_id
    other = only_alert(decode(cid("#4711|1110 01 004", seq="0044")))
    assert other.external_id != first.external_id


def test_long_site_external_id_is_hashed() -> None:
    settings = settings_with({"4711": {"site": "S" * 300}})
    alert = only_alert(decode(sia("#4711|Nri2/BA017"), settings))
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", alert.external_id)


# --- clock skew -------------------------------------------------------------------


@pytest.mark.parametrize(("ahead_s", "recorded"), [(299, False), (300, False), (301, True)])
def test_clock_skew_recorded_when_source_is_ahead(ahead_s: int, recorded: bool) -> None:
    stamp = NOW + timedelta(seconds=ahead_s)
    alert = only_alert(decode(sia("#4711|Nri2/BA017", tail=f"_{stamp:%H:%M:%S,%m-%d-%Y}")))
    assert ("clock_skew_s" in alert.metadata) is recorded
    if recorded:
        assert alert.metadata["clock_skew_s"] == pytest.approx(ahead_s)
    assert alert.metadata["dc09"]["clock_skew_s"] == pytest.approx(ahead_s)


# --- encryption (1.3) -------------------------------------------------------------

PLAIN_PANIC = "kT8w2QzV4n|#5F21|Nri1/PA003]_09:40:05,03-14-2025"


def test_encrypted_frame_with_sample_key() -> None:
    alert = only_alert(decode(encrypted_frame(encrypt(PLAIN_PANIC))))
    assert (alert.type, alert.severity) == ("panic", 1)
    assert alert.external_id == "dc09:5F21:0007:sia-PA-3-a1:2025031409"
    assert alert.metadata["dc09"]["encrypted"] is True
    assert encrypt(PLAIN_PANIC) in alert.raw_payload["frame"]


def test_encrypted_contact_id_and_xdata() -> None:
    plain = "Zz|#5F21|1130 02 009][X24.9][Y60.1]_09:40:05,03-14-2025"
    alert = only_alert(decode(encrypted_frame(encrypt(plain), token="ADM-CID")))
    assert (alert.type, alert.metadata["cid"]["zone"]) == ("intrusion", "009")
    assert alert.location is not None
    assert alert.location.lon == pytest.approx(24.9)


def test_encrypted_heartbeat() -> None:
    intents = decode(encrypted_frame(encrypt("abc|]_09:40:05,03-14-2025"), token="NULL"))
    (row,) = rows_of(intents)
    assert row.metric_name == "alarm.heartbeat"
    assert row.device_id == device_of("5F21")


def test_line_specific_key_wins() -> None:
    settings = settings_with(
        {"L1#5F21": {"key": SAMPLE_KEY}, "5F21": {"key": "00" * 16, "site": "Vault"}}
    )
    alert = only_alert(decode(encrypted_frame(encrypt(PLAIN_PANIC)), settings))
    assert alert.metadata["site"] == "Vault"


def test_no_key_reason() -> None:
    err = decode_error(encrypted_frame(encrypt(PLAIN_PANIC), acct="6C02"))
    assert (err.stage, err.error_code) == ("decode", "encrypted_no_key")
    assert err.reason == "encrypted DC-09 frame from account 6C02, no key configured"


@pytest.mark.parametrize(
    "cipher",
    [
        encrypt(PLAIN_PANIC)[:-1],
        encrypt(PLAIN_PANIC)[:-2] + "GG",
        encrypt(PLAIN_PANIC)[:-2],
        encrypt(PLAIN_PANIC, "00112233445566778899AABBCCDDEEFF"),
        encrypt("kT8w2QzV4n|#5F21|Nri1/PA003]"),
        encrypt("kT8w2QzV4n|#5F21|Nri1/PA003]_9:40:05,03-14-2025"),
        encrypt("kT8w2QzV4n #5F21 Nri1/PA003]_09:40:05,03-14-2025"),
    ],
    ids=["odd", "non-hex", "partial-block", "wrong-key", "no-stamp", "bad-stamp", "no-pad"],
)
def test_unusable_encrypted_frames_are_decrypt_failed(cipher: str) -> None:
    err = decode_error(encrypted_frame(cipher))
    assert (err.stage, err.error_code) == ("decode", "decrypt_failed")
    assert SAMPLE_KEY.lower() not in err.reason.lower()
    assert "PA003" not in err.reason
    assert "5F21|" not in err.reason


def test_validation_errors_in_encrypted_data_do_not_leak_plaintext() -> None:
    err = decode_error(encrypted_frame(encrypt("secretpad|#5F21|Nri1/zz99]_09:40:05,03-14-2025")))
    assert err.error_code == "invalid_value"
    assert "zz99" not in err.reason
    assert "secretpad" not in err.reason


# --- Contact ID 16-digit form ------------------------------------------------------


def _cid16(first15: str) -> str:
    return first15 + cid16_check_digit(first15)


def test_cid16_envelope_restore_matches_dc09_alarm() -> None:
    dc09_alert = only_alert(decode(cid("#4711|1100 01 003")))
    patch = only_patch(decode(envelope_value(_cid16("471118310001003"), receiver="pstn-1")))
    assert patch.match_key == dc09_alert.metadata["match_key"]
    assert patch.metadata_patch["restore_external_id"].startswith("cid16:4711:3100-01-003:")


def test_cid16_alert_columns() -> None:
    value = envelope_value("471118110001003C", receiver="pstn-1", line_card=4)
    alert = only_alert(decode(value))
    assert alert.external_id == "cid16:4711:1100-01-003:202503140915"
    assert alert.raw_payload["line_card"] == 4
    assert alert.raw_payload["format"] == "cid16"
    assert alert.metadata["cid"] == {
        "qualifier": 1,
        "code": "100",
        "partition": "01",
        "zone": "003",
    }


@pytest.mark.parametrize(
    ("frame", "stage", "code"),
    [
        ("471118110001003D", "decode", "bad_checksum"),
        ("471118110001004C", "decode", "bad_checksum"),
        (_cid16("471117110001003"), "validate", "value_out_of_range"),
        (_cid16("471199110001003"), "validate", "value_out_of_range"),
        (_cid16("471118210001003"), "validate", "value_out_of_range"),
    ],
)
def test_cid16_errors(frame: str, stage: str, code: str) -> None:
    err = decode_error(envelope_value(frame))
    assert (err.stage, err.error_code) == (stage, code)


# --- heartbeats and activity -------------------------------------------------------


def test_heartbeat_row_and_liveness_key() -> None:
    intents = decode(make_frame('"NULL"0000R2L3#4711[]' + STAMP))
    (row,) = rows_of(intents)
    assert (row.metric_name, row.metric_value, row.metric_text) == ("alarm.heartbeat", 1, None)
    assert (row.device_type, row.device_id, row.time) == (
        "alarm_panel",
        device_of("4711"),
        STAMP_TIME,
    )
    assert intents[-1] == SetRedis("eriop:alarm:alive:4711", "2025-03-14T09:15:02Z")


def test_heartbeat_account_in_data_block() -> None:
    intents = decode(make_frame('"NULL"0000R2L3[#4712|]' + STAMP))
    assert SetRedis("eriop:alarm:alive:4712", "2025-03-14T09:15:02Z") in intents


def test_heartbeat_without_account_is_discarded() -> None:
    assert decode(make_frame('"NULL"0000R2L3[]' + STAMP)) == [Discard("heartbeat_no_account")]


def test_activity_row_columns() -> None:
    (row,) = rows_of(decode(envelope_value(cid("#4711|1570 03 012"), receiver="rcv-9")))
    assert (row.metric_name, row.metric_text, row.metric_value) == ("alarm.bypass", "cid:1570", 12)
    assert row.device_id == device_of("4711")
    assert row.time == STAMP_TIME
    assert row.metadata["external_id"] == "dc09:4711:0043:cid-1570-03-012:2025031409"
    assert (row.metadata["area"], row.metadata["receiver"], row.metadata["seq"]) == (
        3,
        "rcv-9",
        "0043",
    )


# --- envelope and shared checks -----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "stage", "code"),
    [
        (envelope_value(sia("#4711|Nri2/BA017"), receiver=...), "validate", "missing_field"),
        (envelope_value(sia("#4711|Nri2/BA017"), receiver=""), "validate", "missing_field"),
        (envelope_value(sia("#4711|Nri2/BA017"), receiver=5), "validate", "invalid_value"),
        (
            envelope_value(sia("#4711|Nri2/BA017"), receiver="r" * 101),
            "validate",
            "value_out_of_range",
        ),
        (envelope_value(sia("#4711|Nri2/BA017"), received_at=...), "validate", "missing_field"),
        (
            envelope_value(sia("#4711|Nri2/BA017"), received_at="2025-03-14T09:15:02"),
            "validate",
            "invalid_value",
        ),
        (envelope_value("", frame=...), "validate", "missing_field"),
        (envelope_value("", frame=42), "validate", "invalid_value"),
        (b'[{"frame": "x"}]', "decode", "unknown_format"),
        (b'{"receiver": "r", "receiver": "s"}', "decode", "not_json"),
        (b'{"receiver": "\xff"}', "decode", "not_utf8"),
        (b"", "decode", "unknown_format"),
        (sia("#4711|Nri2/BA017^Door\x00^"), "validate", "nul_in_text"),
        (envelope_value(sia("#4711|Nri2/BA017"), note="a\x00b"), "validate", "nul_in_text"),
        (sia("#4711|Nri2/BA017", tail="_09:15:02,02-30-2025"), "validate", "invalid_value"),
    ],
)
def test_input_errors(value: bytes, stage: str, code: str) -> None:
    err = decode_error(value)
    assert (err.stage, err.error_code) == (stage, code)


def test_envelope_receiver_and_extra_fields() -> None:
    frame = sia("#4711|Nri2/BA017")
    alert = only_alert(decode(envelope_value(frame, gateway={"site": "north"})))
    assert alert.metadata["receiver"] == "rcv-north-1"
    assert alert.received_at == datetime(2025, 3, 14, 9, 15, 2, 840000, tzinfo=UTC)
    assert alert.raw_payload["gateway"] == {"site": "north"}
    assert alert.raw_payload["frame"] == frame.decode().strip()
    assert alert.raw_payload["receiver"] == "rcv-north-1"


def test_oversize_and_tombstone() -> None:
    value = sia("#4711|Nri2/BA017")
    assert decode_error(value, max_bytes=len(value) - 1).error_code == "oversize"
    assert len(decode(value, max_bytes=len(value))) == 1
    assert decode(None) == [Discard("tombstone")]


# --- real-world tolerance (frames as independent transmitters send them) ----------
# my_dc09_spt is an independent DC-09 transmitter (github.com/jvanovost/dc09_spt):
# no R or L unless configured, "#0000|" when the event has no account, "ti" with
# seconds, clear frames without a stamp, encrypted ones with a random pad.


def transmitter(account: str = "1234", key: str | None = None, **kw: Any) -> dc09_msg:
    return dc09_msg(account, key=bytes.fromhex(key) if key else None, **kw)


def sent(frame: str) -> bytes:
    return frame.encode("ascii")


def test_real_transmitter_poll_without_receiver_and_line_is_a_heartbeat() -> None:
    frame = transmitter().dc09poll()
    assert '"NULL"0000#1234[]' in frame
    intents = decode(sent(frame))
    (row,) = rows_of(intents)
    assert (row.metric_name, row.device_id) == ("alarm.heartbeat", device_of("1234"))
    assert any(isinstance(i, SetRedis) and i.key == "eriop:alarm:alive:1234" for i in intents)


def test_real_transmitter_event_without_receiver_and_line() -> None:
    msg = dc03_msg.dc03event("1234", {"code": "BA", "zone": "12", "area": "1"})
    alert = only_alert(decode(sent(transmitter().dc09block(17, "SIA-DCS", msg))))
    assert (alert.type, alert.severity, alert.metadata["site"]) == ("intrusion", 2, "1234")
    assert alert.metadata["dc09"]["rcvr"] is None
    assert alert.metadata["dc09"]["line"] is None
    assert alert.external_id.startswith("dc09:1234:0017:sia-BA-12-a1:")


def test_real_transmitter_with_receiver_and_line() -> None:
    msg = dc03_msg.dc03event("1234", {"code": "FA", "zone": "3"})
    frame = transmitter(receiver=0x1A, line=2).dc09block(5, "SIA-DCS", msg)
    assert '"SIA-DCS"0005R1AL2#1234[' in frame
    alert = only_alert(decode(sent(frame)))
    assert (
        alert.metadata["dc09"] | {"token": "SIA-DCS", "rcvr": "1A", "line": "2"}
        == (alert.metadata["dc09"])
    )


def test_ti_with_seconds_from_a_real_transmitter() -> None:
    params = {"code": "BA", "zone": "12", "area": "1", "time": "10:30:15"}
    frame = transmitter().dc09block(18, "SIA-DCS", dc03_msg.dc03event("1234", params))
    assert "ti10:30:15BA12" in frame
    alert = only_alert(decode(sent(frame)))
    assert alert.metadata["sia"]["ti"] == "10:30:15"
    assert (alert.metadata["sia"]["code"], alert.metadata["sia"]["number"]) == ("BA", 12)
    without = only_alert(decode(sia("#4711|Nti10:30ri1/BA012")))
    assert without.metadata["sia"]["ti"] == "10:30"


@pytest.mark.parametrize("token", ["SIA-DCS", "ADM-CID"])
def test_placeholder_account_in_the_data_block_counts_for_the_header(token: str) -> None:
    if token == "SIA-DCS":
        msg = dc03_msg.dc03event(None, {"code": "BA", "zone": "12"})
    else:
        msg = dc05_msg.dc05event(None, {"code": "130", "zone": "12", "area": "1"})
    assert msg.startswith("#0000|")
    alert = only_alert(decode(sent(transmitter("4711").dc09block(21, token, msg))))
    assert (alert.metadata["account"], alert.metadata["site"]) == ("4711", "4711")
    assert alert.external_id.startswith("dc09:4711:0021:")


@pytest.mark.parametrize("data", ["#0000|", "#0000", "#000000|"])
def test_null_with_placeholder_account_counts_for_the_header(data: str) -> None:
    intents = decode(make_frame(f'"NULL"0000R2L3#4711[{data}]' + STAMP))
    (row,) = rows_of(intents)
    assert row.device_id == device_of("4711")
    assert SetRedis("eriop:alarm:alive:4711", "2025-03-14T09:15:02Z") in intents
    assert not any(isinstance(i, SetRedis) and i.key.endswith(":0000") for i in intents)


def test_null_with_only_a_placeholder_account_has_no_account() -> None:
    intents = decode(make_frame('"NULL"0000R2L3[#0000|]' + STAMP))
    assert intents == [Discard("heartbeat_no_account")]


def test_real_transmitter_encrypted_event_and_poll() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    spt = transmitter("5F21", key=SAMPLE_KEY)
    msg = dc03_msg.dc03event("5F21", {"code": "PA", "zone": "3", "area": "1"})
    alert = only_alert(decode(sent(spt.dc09block(7, "SIA-DCS", msg)), now=now))
    assert (alert.type, alert.metadata["dc09"]["encrypted"]) == ("panic", True)
    occurred = datetime.fromisoformat(alert.metadata["occurred_at"])
    assert abs((occurred - now).total_seconds()) < 5  # the transmitter's stamp
    (row,) = rows_of(decode(sent(spt.dc09poll()), now=now))
    assert (row.metric_name, row.device_id) == ("alarm.heartbeat", device_of("5F21"))


def test_real_transmitter_aes_256() -> None:
    key = "0123456789ABCDEF" * 4
    settings = settings_with({"7777": {"key": key}})
    spt = transmitter("7777", key=key, line=1)
    msg = dc05_msg.dc05event("7777", {"code": "110", "zone": "4", "area": "1"})
    alert = only_alert(decode(sent(spt.dc09block(8, "ADM-CID", msg)), settings))
    assert (alert.type, alert.severity) == ("fire", 1)


@pytest.mark.parametrize("pad", ["kT8w2QzV4n5", "x" * 27])
def test_encrypted_null_without_pad_separator_is_a_link_test(pad: str) -> None:
    plain = pad + "]_09:40:05,03-14-2025"
    plain = "p" * (-len(plain) % 16) + plain
    data = plain.encode("ascii")
    enc = Cipher(algorithms.AES(bytes.fromhex(SAMPLE_KEY)), modes.CBC(bytes(16))).encryptor()
    cipher_hex = (enc.update(data) + enc.finalize()).hex().upper()
    intents = decode(encrypted_frame(cipher_hex, token="NULL"))
    (row,) = rows_of(intents)
    assert (row.metric_name, row.device_id) == ("alarm.heartbeat", device_of("5F21"))
    assert row.time == datetime(2025, 3, 14, 9, 40, 5, tzinfo=UTC)


def test_encrypted_event_without_pad_separator_is_still_decrypt_failed() -> None:
    plain = "p" * 7 + "#5F21Nri1/PA003]_09:40:05,03-14-2025"
    plain = "p" * (-len(plain) % 16) + plain
    data = plain.encode("ascii")
    enc = Cipher(algorithms.AES(bytes.fromhex(SAMPLE_KEY)), modes.CBC(bytes(16))).encryptor()
    cipher_hex = (enc.update(data) + enc.finalize()).hex().upper()
    err = decode_error(encrypted_frame(cipher_hex))
    assert (err.stage, err.error_code) == ("decode", "decrypt_failed")


@pytest.mark.parametrize("seq", ["000A", "000a", "00FF"])
def test_hex_sequence_numbers(seq: str) -> None:
    alert = only_alert(decode(sia("#4711|Nri2/BA017", seq=seq)))
    assert alert.external_id == f"dc09:4711:{seq.upper()}:sia-BA-17-a2:2025031409"
    assert alert.metadata["dc09"]["seq"] == seq


def test_retransmission_with_hex_sequence_number_is_one_alert() -> None:
    """A re-sent frame is re-stamped and may reach another receiver: same id."""
    first = only_alert(decode(sia("#4711|Nri2/BA017", seq="000A")))
    body = '"SIA-DCS"000AR7L1#4711[#4711|Nri2/BA017]_09:15:32,03-14-2025'
    again = only_alert(decode(envelope_value(make_frame(body), receiver="rcv-south-2")))
    assert again.external_id == first.external_id
    after_0009 = only_alert(decode(sia("#4711|Nri2/BA017", seq="0009")))
    assert after_0009.external_id != first.external_id
    decimal_ten = only_alert(decode(sia("#4711|Nri2/BA017", seq="0010")))
    assert decimal_ten.external_id != first.external_id


def test_frame_without_line_uses_the_line_0_account_entry() -> None:
    settings = settings_with({"L0#9999": {"site": "Depot 9"}})
    alert = only_alert(decode(make_frame('"SIA-DCS"0042#9999[#9999|Nri1/BA012]' + STAMP), settings))
    assert alert.metadata["site"] == "Depot 9"


@pytest.mark.parametrize("data", ["#1247|18 1 120 01 007", "#1247|18 1120 01 007"])
def test_contact_id_with_message_type_prefix_decodes_like_the_plain_form(data: str) -> None:
    plain = only_alert(decode(cid("#1247|1120 01 007", acct="1247")))
    alert = only_alert(decode(cid(data, acct="1247")))
    assert (alert.type, alert.severity) == ("panic", 1)
    assert alert.external_id == plain.external_id
    assert alert.metadata["cid"] == plain.metadata["cid"]


def test_cid16_account_with_hex_digit_a() -> None:
    alert = only_alert(decode(envelope_value("1AC3181130010045", receiver="pstn-1")))
    assert (alert.type, alert.metadata["account"], alert.metadata["site"]) == (
        "intrusion",
        "1AC3",
        "1AC3",
    )
    assert alert.external_id == "cid16:1AC3:1130-01-004:202503140915"


# --- line supervision messages (1.12) ----------------------------------------------

SINCE = datetime(2025, 3, 14, 8, 40, 0, 125000, tzinfo=UTC)
FOUND = datetime(2025, 3, 14, 9, 12, 0, tzinfo=UTC)


def line_change(state: str = "failed", **kw: Any) -> LineChange:
    fields: dict[str, Any] = {
        "account": "4711",
        "line": "3",
        "state": state,
        "since": SINCE,
        "at": FOUND,
        "interval_s": 1800.0,
    }
    fields.update(kw)
    return LineChange(**fields)


def test_communication_failure_is_one_supervisory_alert() -> None:
    settings = settings_with({"4711": {"site": "Warehouse 7", "address": {"city": "Espoo"}}})
    value = line_change_envelope(line_change(), "rcv-north-1")
    alert = only_alert(decode(value, settings))
    assert (alert.source, alert.type, alert.severity) == ("alarm_system", "supervisory", 3)
    assert alert.external_id == "line:4711:2025-03-14T08:40:00.125000Z"
    assert alert.title == "Communication failure - account Warehouse 7, line 3"
    assert alert.description == (
        "No event or link test from account 4711 since 2025-03-14T08:40:00.125000Z"
        " (expected at least every 1800 s)."
    )
    assert alert.address == {"city": "Espoo"}
    assert (alert.received_at, alert.processed_at) == (FOUND, NOW)
    meta = alert.metadata
    assert (meta["site"], meta["account"], meta["receiver"]) == (
        "Warehouse 7",
        "4711",
        "rcv-north-1",
    )
    assert meta["match_key"] == "Warehouse 7|line:4711"
    assert meta["supervision"]["state"] == "failed"
    assert alert.raw_payload["format"] == "supervision"


def test_the_same_outage_from_another_receiver_or_repeated_has_the_same_id() -> None:
    first = only_alert(decode(line_change_envelope(line_change(), "rcv-north-1")))
    later = line_change(at=FOUND + timedelta(seconds=20), line=None)
    other = only_alert(decode(line_change_envelope(later, "rcv-south-2")))
    assert other.external_id == first.external_id
    next_outage = line_change(since=SINCE + timedelta(hours=2))
    assert only_alert(decode(line_change_envelope(next_outage, "x"))).external_id != (
        first.external_id
    )


def test_restore_patches_the_open_failure() -> None:
    failure = only_alert(decode(line_change_envelope(line_change(), "rcv-north-1")))
    restored = line_change("restored", at=FOUND + timedelta(minutes=3))
    patch = only_patch(decode(line_change_envelope(restored, "rcv-north-1")))
    assert (patch.kind, patch.source) == ("restore", "alarm_system")
    assert patch.match_key == failure.metadata["match_key"]
    assert patch.metadata_patch == {
        "restored_at": "2025-03-14T09:15:00Z",
        "restore_external_id": "line:4711:2025-03-14T08:40:00.125000Z:restored",
    }
    (miss,) = patch.on_miss
    (row,) = rows_of([miss])
    assert (row.metric_name, row.device_id) == ("alarm.restore", device_of("4711"))
    assert row.metadata["unmatched"] is True


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"account": None}, "missing_field"),
        ({"account": "47-11"}, "invalid_value"),
        ({"account": 4711}, "invalid_value"),
        ({"line": 3}, "invalid_value"),
        ({"state": None}, "missing_field"),
        ({"state": "down"}, "invalid_value"),
        ({"since": None}, "missing_field"),
        ({"since": "2025-03-14T08:40:00"}, "invalid_value"),
        ({"interval_s": -1}, "value_out_of_range"),
        ({"interval_s": "1800"}, "invalid_value"),
    ],
)
def test_malformed_supervision_messages_are_dead_lettered(
    change: dict[str, Any], code: str
) -> None:
    body = {**line_change().as_json(), **change}
    body = {k: v for k, v in body.items() if v is not None}
    value = json.dumps(
        {"receiver": "rcv-1", "received_at": "2025-03-14T09:12:00Z", "supervision": body}
    ).encode()
    err = decode_error(value)
    assert (err.stage, err.error_code) == ("validate", code)


def test_supervision_envelope_needs_receiver_and_received_at() -> None:
    body = line_change().as_json()
    err = decode_error(
        json.dumps({"received_at": "2025-03-14T09:12:00Z", "supervision": body}).encode()
    )
    assert (err.error_code, err.reason) == ("missing_field", "envelope.receiver is required")
    err = decode_error(json.dumps({"receiver": "r", "supervision": body}).encode())
    assert err.error_code == "missing_field"
    err = decode_error(
        json.dumps({"receiver": "r", "received_at": "x", "supervision": []}).encode()
    )
    assert err.error_code == "invalid_value"


def test_checkin_intervals_per_account() -> None:
    settings = settings_with(
        {
            "4711": {"checkin_interval_s": 600},
            "L3#4711": {"checkin_interval_s": 90},
            "l1#0a12": {"checkin_interval_s": 0},
            "9999": {"site": "no override"},
        }
    )
    assert checkin_intervals(settings.accounts) == {"4711": 90.0, "0A12": 0.0}
    assert SETTINGS.checkin_interval_s == 1800
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        AlarmSettings.model_validate({"accounts": {"1": {"checkin_interval_s": -5}}})
