"""DC-09 frames, SIA-DCS and Contact ID data, xdata (docs/formats.md 1.2-1.6)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from pipeline.decoders.alarm.dc09 import (
    crc16_arc,
    decrypt_rest,
    frame_stamp,
    frame_text,
    length_matches,
    parse_frame,
    parse_stamp,
    split_rest,
    strip_frame,
)
from pipeline.decoders.alarm.dc09_data import (
    cid16_check_digit,
    cid16_checksum_ok,
    is_cid16,
    parse_cid16,
    parse_contact_id,
    parse_coordinate,
    parse_sia,
    read_xdata,
)
from pipeline.errors import DecodeError, InputError, ValidationError
from tests.samples import load_fixtures, load_samples

SAMPLE_KEY = load_fixtures()["config"]["alarm"]["accounts"]["5F21"]["key"]
SAMPLE_CIPHER = (
    "8FDD974A1FD3E5D87F21AF792D24762F29E35699B00926CD66F1DBD1CAA7D4CF"
    "D18807BA589C03D77577B3177B902BEE"
)


def crc_reference(data: bytes) -> int:
    """Table-driven CRC-16/ARC, built independently of the decoder's bitwise loop."""
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
        table.append(c)
    crc = 0
    for b in data:
        crc = (crc >> 8) ^ table[(crc ^ b) & 0xFF]
    return crc


def make_frame(body: bytes | str, *, length: str | None = None, crc: str | None = None) -> bytes:
    raw = body.encode("ascii") if isinstance(body, str) else body
    length = length if length is not None else f"0{len(raw):03X}"
    crc = crc if crc is not None else f"{crc_reference(raw):04X}"
    return b"\n" + crc.encode() + length.encode() + raw + b"\r"


def encrypt(plaintext: str, key_hex: str = SAMPLE_KEY) -> str:
    data = plaintext.encode("ascii")
    enc = Cipher(algorithms.AES(bytes.fromhex(key_hex)), modes.CBC(bytes(16))).encryptor()
    return (enc.update(data) + enc.finalize()).hex().upper()


def sample_frames() -> list[tuple[str, bool]]:
    out = []
    for item in load_samples("alerts.alarm"):
        value = item["value"]
        if value.lstrip().startswith("{"):
            value = json.loads(value).get("frame", "")  # supervision messages carry none
        if '"' in value:
            out.append((value, item["expect"].get("error_code") == "bad_checksum"))
    return out


# --- CRC and length ---------------------------------------------------------------


def test_crc_check_value() -> None:
    assert crc16_arc(b"123456789") == 0xBB3D


def test_crc_of_empty_input_is_initial_value() -> None:
    assert crc16_arc(b"") == 0


@pytest.mark.parametrize("data", [b"a", b'"SIA-DCS"0001L0#1234[]', bytes(range(256))])
def test_crc_agrees_with_table_driven_reference(data: bytes) -> None:
    assert crc16_arc(data) == crc_reference(data)


@pytest.mark.parametrize(("frame", "altered"), sample_frames())
def test_sample_frames_crc_field(frame: str, altered: bool) -> None:
    stripped = frame.strip("\r\n")
    matches = crc16_arc(stripped[8:].encode()) == int(stripped[:4], 16)
    assert matches is not altered


def test_bad_crc_is_bad_checksum_with_both_values() -> None:
    body = '"SIA-DCS"0042R2L3#4711[#4711|Nri2/BA017]_09:15:02,03-14-2025'
    good = crc_reference(body.encode())
    wrong = f"{good ^ 0x1000:04X}"
    with pytest.raises(DecodeError) as err:
        parse_frame(make_frame(body, crc=wrong))
    assert err.value.error_code == "bad_checksum"
    assert err.value.reason == f"DC-09 CRC field {wrong} does not match computed {good:04X}"


def test_crc_field_in_lower_case_is_accepted() -> None:
    body = '"NULL"0000L0#1234[]'
    frame = parse_frame(make_frame(body, crc=f"{crc_reference(body.encode()):04x}"))
    assert frame.protocol == "NULL"


def test_crc_covers_the_bytes_as_received() -> None:
    body = '"SIA-DCS"0001L0#1234[#1234|Nri1/BA001^Kellar\u00e4^]'.encode("cp1252")
    frame = parse_frame(make_frame(body))
    assert "Kellar\u00e4" in frame.rest
    as_utf8 = body.decode("cp1252").encode("utf-8")
    with pytest.raises(DecodeError, match="CRC"):
        parse_frame(make_frame(body, crc=f"{crc_reference(as_utf8):04X}"))


@pytest.mark.parametrize(
    ("declared", "n", "ok"),
    [("003C", 60, True), ("0060", 60, True), ("0099", 60, False), ("0047", 47, True)],
)
def test_length_matches_hex_or_decimal(declared: str, n: int, ok: bool) -> None:
    assert length_matches(declared, n) is ok


def test_length_field_never_rejects() -> None:
    body = '"SIA-DCS"0042R2L3#4711[#4711|Nri2/BA017]'
    n = len(body)
    assert not parse_frame(make_frame(body)).length_mismatch
    assert not parse_frame(make_frame(body, length=f"{n:04d}")).length_mismatch
    wrong = f"0{n + 7:03X}"
    assert not (wrong.isdigit() and int(wrong) == n)
    assert parse_frame(make_frame(body, length=wrong)).length_mismatch


# --- frame grammar ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"\nABC\r", b"ABC"),
        (b"ABC\r\n", b"ABC"),
        (b"ABC\n", b"ABC"),
        (b"ABC", b"ABC"),
        (b"\n\nABC", b"\nABC"),
    ],
)
def test_strip_frame(raw: bytes, expected: bytes) -> None:
    assert strip_frame(raw) == expected


def test_parse_frame_header_fields() -> None:
    frame = parse_frame(make_frame('"ADM-CID"0043R2aL3f#47a1[#47A1|1110 01 004]'))
    assert (frame.protocol, frame.encrypted, frame.seq) == ("ADM-CID", False, "0043")
    # receiver and line as sent (a reply echoes them); the account upper case for lookups
    assert (frame.rcvr, frame.line, frame.account) == ("2a", "3f", "47A1")
    assert frame.account_sent == "47a1"
    assert frame.rest == "#47A1|1110 01 004]"
    assert frame.text[8:] == '"ADM-CID"0043R2aL3f#47a1[#47A1|1110 01 004]'


def test_parse_frame_without_receiver_and_account() -> None:
    frame = parse_frame(make_frame('"NULL"0000L0[]'))
    assert (frame.rcvr, frame.line, frame.account) == (None, "0", None)


@pytest.mark.parametrize("token", ["ACK", "NAK", "DUH", "RSP"])
def test_reply_token_frames_are_unknown_format(token: str) -> None:
    with pytest.raises(DecodeError) as err:
        parse_frame(make_frame(f'"{token}"0042R2L3#4711[]'))
    assert err.value.error_code == "unknown_format"


@pytest.mark.parametrize("raw", [b"ACK", b"NAK\r", b"hello", b"1234", b'\n"SIA-DCS"0001L0[]\r'])
def test_non_frames_are_unknown_format(raw: bytes) -> None:
    with pytest.raises(DecodeError) as err:
        parse_frame(raw)
    assert err.value.error_code == "unknown_format"


@pytest.mark.parametrize(
    "body", ['"SIA-DCS"42L0[]', '"SIA-DCS"00G2L0[]', '"SIA-DCS"0042X2#4711[]', '"SIA-DCS"0042L3']
)
def test_malformed_header_after_good_crc_is_unknown_format(body: str) -> None:
    with pytest.raises(DecodeError) as err:
        parse_frame(make_frame(body))
    assert err.value.error_code == "unknown_format"


@pytest.mark.parametrize(
    ("body", "rcvr", "line", "account"),
    [
        # a widely used transmitter library sends neither R nor L unless configured
        ('"NULL"0000#1234[]', None, None, "1234"),
        ('"SIA-DCS"0001R1#1234[#1234|NRP]', "1", None, "1234"),
        ('"SIA-DCS"0001L2#1234[#1234|NRP]', None, "2", "1234"),
        ('"NULL"0000[]', None, None, None),
    ],
)
def test_receiver_and_line_fields_are_optional(
    body: str, rcvr: str | None, line: str | None, account: str | None
) -> None:
    frame = parse_frame(make_frame(body))
    assert (frame.rcvr, frame.line, frame.account) == (rcvr, line, account)


@pytest.mark.parametrize(("seq", "sent"), [("0009", "0009"), ("000A", "000A"), ("00ff", "00ff")])
def test_sequence_number_may_be_hex(seq: str, sent: str) -> None:
    frame = parse_frame(make_frame(f'"SIA-DCS"{seq}L0#1234[#1234|NRP]'))
    assert frame.seq == sent


def test_frame_text_falls_back_to_windows_1252() -> None:
    assert frame_text("Kellar\u00e4".encode()) == "Kellar\u00e4"
    assert frame_text(b"Kellar\xe4 \x80") == "Kellar\u00e4 \u20ac"
    assert frame_text(b"\x81") == "\x81"


# --- clear part ---------------------------------------------------------------------


def test_split_rest_data_xdata_stamp() -> None:
    block = split_rest("#4711|1110 01 004][X24.9][Y60.1]_09:20:11,03-14-2025", encrypted=False)
    assert block.data == "#4711|1110 01 004"
    assert block.xdata == (("X", "24.9"), ("Y", "60.1"))
    assert block.stamp == "09:20:11,03-14-2025"


def test_split_rest_caret_text_may_hold_bracket() -> None:
    block = split_rest("Nri1/BA012^Door ]A[^]", encrypted=False)
    assert block.data == "Nri1/BA012^Door ]A[^"
    assert block.stamp is None


@pytest.mark.parametrize(
    "rest", ["Nri1/BA012", "Nri1/BA012]junk", "N]_09:20:11", "N][x1]", "N][]", "N][X1"]
)
def test_split_rest_malformed(rest: str) -> None:
    with pytest.raises(DecodeError) as clear:
        split_rest(rest, encrypted=False)
    assert clear.value.error_code == "unknown_format"
    with pytest.raises(DecodeError) as enc:
        split_rest(rest, encrypted=True)
    assert enc.value.error_code == "decrypt_failed"


def test_decrypted_part_needs_its_stamp() -> None:
    assert split_rest("N]", encrypted=False).stamp is None
    with pytest.raises(DecodeError) as err:
        split_rest("N]", encrypted=True)
    assert err.value.error_code == "decrypt_failed"


def test_stamp_parsing() -> None:
    assert parse_stamp("09:15:02,03-14-2025") == datetime(2025, 3, 14, 9, 15, 2, tzinfo=UTC)
    assert parse_stamp("09:15:02,13-14-2025") is None
    assert parse_stamp("9:15:02,03-14-2025") is None
    with pytest.raises(ValidationError) as err:
        frame_stamp("25:00:00,03-14-2025")
    assert err.value.error_code == "invalid_value"


# --- decryption ---------------------------------------------------------------------


def test_sample_ciphertext_decrypts_with_sample_key() -> None:
    clear = decrypt_rest(SAMPLE_CIPHER, SAMPLE_KEY)
    assert clear == "#5F21|Nri1/PA003]_09:40:05,03-14-2025"


@pytest.mark.parametrize("key_bytes", [16, 24, 32])
def test_decrypt_roundtrip_every_aes_size(key_bytes: int) -> None:
    key = bytes(range(1, key_bytes + 1)).hex()
    plain = "Zq9|#1234|Nri1/FA001]_10:00:00,03-14-2025"
    plain = "x" * (-len(plain) % 16) + plain
    assert decrypt_rest(encrypt(plain, key), key) == "#1234|Nri1/FA001]_10:00:00,03-14-2025"


def test_no_unpadding_is_applied() -> None:
    plain = "pad|N]_10:00:00,03-14-2025" + "\x05" * 6
    assert len(plain) % 16 == 0
    assert decrypt_rest(encrypt(plain), SAMPLE_KEY).endswith("\x05" * 6)


@pytest.mark.parametrize(
    "cipher",
    [
        SAMPLE_CIPHER[:-1],  # odd length
        SAMPLE_CIPHER[:-2] + "ZZ",  # not hex
        SAMPLE_CIPHER[:-2],  # 47 bytes: not whole blocks
        "",
    ],
)
def test_unusable_ciphertext_is_decrypt_failed(cipher: str) -> None:
    with pytest.raises(DecodeError) as err:
        decrypt_rest(cipher, SAMPLE_KEY)
    assert err.value.error_code == "decrypt_failed"


def test_wrong_key_is_decrypt_failed_without_leaking() -> None:
    wrong = "00112233445566778899AABBCCDDEEFF"
    with pytest.raises(DecodeError) as err:
        decrypt_rest(SAMPLE_CIPHER, wrong)
    assert err.value.error_code == "decrypt_failed"
    assert wrong not in err.value.reason
    assert SAMPLE_KEY not in err.value.reason


def test_plaintext_without_pad_separator_is_decrypt_failed() -> None:
    with pytest.raises(DecodeError) as err:
        decrypt_rest(encrypt("#1234 N]_10:00:00,03-14-2025" + "x" * 4), SAMPLE_KEY)
    assert err.value.error_code == "decrypt_failed"
    assert "1234" not in err.value.reason


NULL_STAMP = "]_10:00:00,03-14-2025"


@pytest.mark.parametrize("pad", ["kT8w2QzV4n", "", "x" * 27])
def test_encrypted_null_without_pad_separator_is_a_link_test(pad: str) -> None:
    plain = pad + NULL_STAMP
    plain = "p" * (-len(plain) % 16) + plain
    assert decrypt_rest(encrypt(plain), SAMPLE_KEY, null=True) == NULL_STAMP
    block = split_rest(decrypt_rest(encrypt(plain), SAMPLE_KEY, null=True), encrypted=True)
    assert (block.data, block.stamp) == ("", NULL_STAMP[2:])


@pytest.mark.parametrize(
    "plain",
    [
        "pppppppppp]_10:00:00,03-14-20",  # no whole stamp
        "ppppppp[X1]]_10:00:00,03-14-2025",  # an xdata block is not pad
        "pppppppppppppp]_10:00:00,03-14-2025]",  # bytes after the stamp
    ],
)
def test_encrypted_null_without_separator_needs_a_stamp_at_the_end(plain: str) -> None:
    plain = "p" * (-len(plain) % 16) + plain
    with pytest.raises(DecodeError) as err:
        decrypt_rest(encrypt(plain), SAMPLE_KEY, null=True)
    assert err.value.error_code == "decrypt_failed"


def test_only_null_frames_may_omit_the_pad_separator() -> None:
    plain = "p" * 11 + NULL_STAMP
    with pytest.raises(DecodeError) as err:
        decrypt_rest(encrypt(plain), SAMPLE_KEY)
    assert err.value.error_code == "decrypt_failed"


# --- SIA-DCS data -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "ri", "user", "ti"),
    [
        ("Nri1/BA012", 1, None, None),
        ("Nri1BA012", 1, None, None),
        ("Nid5ti10:30ri1BA012", 1, 5, "10:30"),
        ("Nri1id5BA012", 1, 5, None),
        ("Nid5/ri1/BA012", 1, 5, None),
        ("Nti10:30:15/id5/ri1/BA012", 1, 5, "10:30:15"),
        ("Nri1/ti10:30id5BA012", 1, 5, "10:30"),
        ("Nid0005ri0001/BA012", 1, 5, None),
        ("NBA012", None, None, None),
    ],
)
def test_sia_modifiers_in_any_order(data: str, ri: int | None, user: int | None, ti: str) -> None:
    event = parse_sia(data)
    assert (event.code, event.number) == ("BA", 12)
    assert (event.ri, event.user, event.ti) == (ri, user, ti)
    assert event.tail is None


def test_sia_account_texts_and_tail() -> None:
    event = parse_sia("#4711|Nri2^Lobby^/id7^Ann^BA017^Door 3^|Aback door")
    assert event.account == "4711"
    assert (event.ri, event.ri_text, event.user, event.user_text) == (2, "Lobby", 7, "Ann")
    assert (event.code, event.number, event.text) == ("BA", 17, "Door 3")
    assert event.tail == "|Aback door"


def test_sia_code_without_number() -> None:
    event = parse_sia("|NRP")
    assert (event.account, event.code, event.number) == (None, "RP", None)


def test_sia_number_is_at_most_five_digits() -> None:
    event = parse_sia("NBA1234567")
    assert (event.number, event.tail) == (12345, "67")


def test_sia_text_message() -> None:
    event = parse_sia("#4711|AHello panel")
    assert (event.account, event.code, event.text) == ("4711", None, "Hello panel")


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ("N", "missing_field"),
        ("#4711|N", "missing_field"),
        ("Nri1/", "missing_field"),
        ("", "missing_field"),
        ("#4711|", "missing_field"),
        ("Nri1/ba012", "invalid_value"),
        ("N12", "invalid_value"),
        ("XBA012", "invalid_value"),
    ],
)
def test_sia_data_errors(data: str, code: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_sia(data)
    assert err.value.error_code == code


# --- Contact ID ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        "#4711|1110 01 004",
        "#47111110 01 004",
        "1110 01 004",
        # with the phone-line message type first, as some panels write it
        "#4711|18 1 110 01 004",
        "#4711|18 1110 01 004",
        "#4711|98 1110 01 004",
        "18 1110 01 004",
    ],
)
def test_contact_id_data(data: str) -> None:
    cid = parse_contact_id(data)
    assert (cid.qualifier, cid.code, cid.partition, cid.zone) == (1, "110", "01", "004")
    assert cid.account == ("4711" if data.startswith("#") else None)


@pytest.mark.parametrize("q", ["0", "2", "4", "5", "7", "8", "9", "B"])
def test_contact_id_qualifier_out_of_range(q: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_contact_id(f"#4711|{q}110 01 004")
    assert err.value.error_code == "value_out_of_range"


@pytest.mark.parametrize(
    ("data", "code"),
    [("", "missing_field"), ("#4711|", "missing_field"), ("1110 01", "invalid_value")],
)
def test_contact_id_data_errors(data: str, code: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_contact_id(data)
    assert err.value.error_code == code


def test_cid16_checksum_example() -> None:
    # 4+7+1+1+1+8+1+1+10+10+10+1+10+10+3 = 78; 78 mod 15 = 3; S = 12 = C
    assert sum(10 if d == "0" else int(d, 16) for d in "471118110001003") == 78
    assert cid16_check_digit("471118110001003") == "C"
    assert cid16_checksum_ok("471118110001003C")
    parsed = parse_cid16("471118110001003C")
    assert (parsed.account, parsed.message_type) == ("4711", "18")
    event = parsed.event
    assert (event.qualifier, event.code, event.partition, event.zone) == (1, "100", "01", "003")


def _first15_with_sum_mod(remainder: int) -> str:
    """A valid-looking first 15 digits whose digit sum (0 as 10) has this remainder mod 15."""
    for zone in range(1, 1000):
        first15 = f"471118110001{zone:03d}"
        if sum(10 if d == "0" else int(d, 16) for d in first15) % 15 == remainder:
            return first15
    raise AssertionError("no such zone")


def test_cid16_check_digit_when_sum_is_already_a_multiple_of_15() -> None:
    first15 = _first15_with_sum_mod(0)
    assert cid16_check_digit(first15) == "F"
    assert cid16_checksum_ok(first15 + "F")
    assert parse_cid16(first15 + "F").event.zone == first15[12:]


def test_cid16_zero_check_digit_counts_as_ten() -> None:
    first15 = _first15_with_sum_mod(5)
    assert cid16_check_digit(first15) == "0"
    assert cid16_checksum_ok(first15 + "0")
    # A, the name some receivers give the tenth tone, weighs the same
    assert cid16_checksum_ok(first15 + "A")
    assert parse_cid16(first15 + "A").event.zone == first15[12:]


def test_cid16_account_with_hex_digit_a() -> None:
    # 1+10+12+3 + 1+8 + 1+1+3+10 + 10+1 + 10+10+4 = 85; 85 mod 15 = 10; S = 5
    first15 = "1AC3181130010" + "04"
    assert cid16_check_digit(first15) == "5"
    parsed = parse_cid16(first15 + "5")
    assert (parsed.account, parsed.message_type) == ("1AC3", "18")
    event = parsed.event
    assert (event.qualifier, event.code, event.partition, event.zone) == (1, "130", "01", "004")
    # A weighs 10 like 0: the same string with 0 for A has the same check digit
    assert cid16_check_digit("10C3181130010" + "04") == "5"
    with pytest.raises(DecodeError) as err:
        parse_cid16(first15 + "6")
    assert err.value.error_code == "bad_checksum"


@pytest.mark.parametrize("position", range(16))
def test_cid16_any_altered_digit_is_bad_checksum(position: int) -> None:
    good = "471118110001003C"
    digit = good[position]
    other = "5" if digit != "5" else "6"
    with pytest.raises(DecodeError) as err:
        parse_cid16(good[:position] + other + good[position + 1 :])
    assert err.value.error_code == "bad_checksum"


@pytest.mark.parametrize(("mt", "ok"), [("18", True), ("98", True), ("17", False), ("99", False)])
def test_cid16_message_type(mt: str, ok: bool) -> None:
    first15 = f"4711{mt}110001003"
    text = first15 + cid16_check_digit(first15)
    if ok:
        assert parse_cid16(text).message_type == mt
    else:
        with pytest.raises(ValidationError) as err:
            parse_cid16(text)
        assert err.value.error_code == "value_out_of_range"


def test_cid16_qualifier_out_of_range() -> None:
    first15 = "471118210001003"
    with pytest.raises(ValidationError) as err:
        parse_cid16(first15 + cid16_check_digit(first15))
    assert err.value.error_code == "value_out_of_range"


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("471118110001003C", True),
        ("471118110001003c", True),
        ("1AC3181130010045", True),
        ("47111811A001003C", False),
        ("4711A8110001003C", False),
    ],
)
def test_cid16_shape(text: str, ok: bool) -> None:
    assert is_cid16(text) is ok
    if not ok:
        with pytest.raises(InputError):
            parse_cid16(text)


# --- xdata --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "axis", "expected"),
    [
        ("24.93712", "X", 24.93712),
        ("-3.5", "X", -3.5),
        ("60.16952", "Y", 60.16952),
        ("60N10.1712", "Y", 60 + 10.1712 / 60),
        ("33S52.5", "Y", -(33 + 52.5 / 60)),
        ("024E56.2272", "X", 24 + 56.2272 / 60),
        ("70W30", "X", -(70 + 30 / 60)),
        (" 180 ", "X", 180.0),
        ("90.0", "Y", 90.0),
        ("90.5", "Y", None),
        ("181", "X", None),
        ("-91", "Y", None),
        ("60N61.0", "Y", None),
        ("60E10.0", "Y", None),
        ("24N10.0", "X", None),
        ("abc", "X", None),
        ("", "Y", None),
    ],
)
def test_coordinates(value: str, axis: str, expected: float | None) -> None:
    got = parse_coordinate(value, axis)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, abs=1e-9)


def test_read_xdata() -> None:
    xdata = read_xdata(
        [
            ("X", "024E56.2272"),
            ("Y", "60N10.1712"),
            ("H", "09:14:55,03-14-2025"),
            ("V", "https://verify.example/clip/1"),
            ("I", "Smoke in stairwell"),
            ("L", "2nd floor"),
            ("X", "99.0"),
            ("K", "kept"),
        ]
    )
    assert xdata.location is not None
    assert xdata.location.lon == pytest.approx(24 + 56.2272 / 60)
    assert xdata.location.lat == pytest.approx(60 + 10.1712 / 60)
    assert xdata.occurred_at == datetime(2025, 3, 14, 9, 14, 55, tzinfo=UTC)
    assert xdata.verification_url == "https://verify.example/clip/1"
    assert xdata.texts == (("I", "Smoke in stairwell"), ("L", "2nd floor"))
    assert xdata.blocks["X"] == "024E56.2272"
    assert xdata.blocks["K"] == "kept"


@pytest.mark.parametrize(
    "blocks",
    [[("X", "24.9")], [("X", "24.9"), ("Y", "95")], [("X", "east"), ("Y", "60.1")]],
)
def test_read_xdata_location_needs_both_valid(blocks: list[tuple[str, str]]) -> None:
    assert read_xdata(blocks).location is None


def test_read_xdata_unparseable_time_is_kept_as_text() -> None:
    xdata = read_xdata([("H", "yesterday")])
    assert xdata.occurred_at is None
    assert xdata.blocks == {"H": "yesterday"}
