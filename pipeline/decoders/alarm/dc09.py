"""SIA DC-09 frames as alarm receivers forward them (docs/formats.md 1.2-1.3).

One frame is checked against its CRC-16/ARC, its length field is compared
leniently, ``*`` frames are decrypted with the account's AES key, and the clear
part is split into the data block, the xdata blocks and the time stamp. The
data block itself is read by :mod:`pipeline.decoders.alarm.dc09_data`.

Pure functions; input errors are raised as :mod:`pipeline.errors` codes.
Reasons name the rule that failed and never echo a key or decrypted text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from pipeline.errors import DecodeError, ValidationError

TOKENS: Final = frozenset({"SIA-DCS", "ADM-CID", "NULL"})

_HEAD_RE: Final = re.compile(r'([0-9A-Fa-f]{4})(0[0-9A-Fa-f]{3})"(\*?)([^"]{0,20})"')
# Sequence numbers are decimal in the standard; some transmitters count in hex
# (0009, 000A). R and L are optional: a widely used transmitter library omits both.
_ADDRESS_RE: Final = re.compile(
    r"([0-9A-Fa-f]{4})(?:R([0-9A-Fa-f]{1,6}))?(?:L([0-9A-Fa-f]{1,6}))?(?:#([0-9A-Fa-f]{3,16}))?\["
)
_STAMP_RE: Final = re.compile(
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}),([0-9]{2})-([0-9]{2})-([0-9]{4})", re.ASCII
)
# The end of a decrypted NULL block whose sender put no "|" after the pad.
_NULL_TAIL_RE: Final = re.compile(
    r"\](_[0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{2}-[0-9]{2}-[0-9]{4})\Z", re.ASCII
)
_HEX_RE: Final = re.compile(r"[0-9A-Fa-f]+")
_ZERO_IV: Final = bytes(16)
_AES_BLOCK: Final = 16


def _cp1252_table() -> tuple[str, ...]:
    # The five bytes Windows-1252 leaves undefined map to the C1 controls of the
    # same value (as browsers do), so no byte can make an alarm unreadable.
    chars = []
    for b in range(256):
        try:
            chars.append(bytes([b]).decode("cp1252"))
        except UnicodeDecodeError:
            chars.append(chr(b))
    return tuple(chars)


_CP1252: Final = _cp1252_table()


def crc16_arc(data: bytes) -> int:
    """CRC-16/ARC: poly 0x8005 reflected (0xA001), init 0, no final XOR."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def frame_text(raw: bytes) -> str:
    """The frame as text: UTF-8 when it is valid, else Windows-1252.

    Panels write ``^…^`` texts and xdata in their local code page; reading those
    as Windows-1252 keeps the alarm instead of rejecting it as ``not_utf8``.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(_CP1252[b] for b in raw)


def strip_frame(raw: bytes) -> bytes:
    """Drop one leading LF and one trailing CR, CRLF or LF."""
    if raw.startswith(b"\n"):
        raw = raw[1:]
    if raw.endswith(b"\r\n"):
        return raw[:-2]
    if raw.endswith((b"\r", b"\n")):
        return raw[:-1]
    return raw


@dataclass(frozen=True, slots=True)
class Frame:
    """A DC-09 frame whose CRC matched; ``rest`` follows the opening ``[``.

    ``seq``, ``rcvr`` and ``line`` are the text as sent (None when the field is
    absent), so that a reply can echo exactly what came; ``account`` is upper
    case for lookups and ids, ``account_sent`` the text as sent.
    """

    text: str
    protocol: str
    encrypted: bool
    seq: str
    rcvr: str | None
    line: str | None
    account: str | None
    rest: str
    length_mismatch: bool
    account_sent: str | None = None


def length_matches(declared: str, body_length: int) -> bool:
    """The length field may be hex (the standard) or decimal (some transmitters)."""
    if int(declared, 16) == body_length:
        return True
    return declared.isdigit() and int(declared) == body_length


def parse_frame(raw: bytes) -> Frame:
    """Check grammar, token and CRC of one frame (LF/CR framing optional)."""
    raw = strip_frame(raw)
    text = frame_text(raw)
    head = _HEAD_RE.match(text)
    if head is None:
        raise DecodeError("unknown_format", "not a DC-09 frame (CRC, length, quoted token)")
    token = head[4]
    if token not in TOKENS:
        raise DecodeError("unknown_format", f"DC-09 token {token!r} is not an event frame")
    # CRC and length cover the bytes as received; crc and len are 8 ASCII bytes.
    body = raw[8:]
    computed = crc16_arc(body)
    if computed != int(head[1], 16):
        raise DecodeError(
            "bad_checksum", f"DC-09 CRC field {head[1]} does not match computed {computed:04X}"
        )
    address = _ADDRESS_RE.match(text, head.end())
    if address is None:
        raise DecodeError("unknown_format", "DC-09 header (seq, receiver, line, account) malformed")
    account = address[4]
    return Frame(
        text=text,
        protocol=token,
        encrypted=head[3] == "*",
        seq=address[1],
        rcvr=address[2],
        line=address[3],
        account=account.upper() if account else None,
        rest=text[address.end() :],
        length_mismatch=not length_matches(head[2], len(body)),
        account_sent=account,
    )


def decrypt_rest(cipher_hex: str, key_hex: str, *, null: bool = False) -> str:
    """Decrypt the body of a ``*`` frame; return the clear part after the pad.

    AES-CBC with a zero IV and no unpadding: the sender pads at the front, up to
    the first ``|``, so the clear part is ``data "]" *xdata stamp``. A ``NULL``
    block has no data, and some senders then write no ``|`` either: a block
    ending in ``]_HH:MM:SS,MM-DD-YYYY`` is then the empty data and its stamp.
    """
    if len(cipher_hex) % 2 or not _HEX_RE.fullmatch(cipher_hex):
        raise DecodeError("decrypt_failed", "encrypted DC-09 body is not whole hex bytes")
    data = bytes.fromhex(cipher_hex)
    if len(data) % _AES_BLOCK:
        raise DecodeError(
            "decrypt_failed", f"encrypted DC-09 body of {len(data)} bytes is not whole AES blocks"
        )
    decryptor = Cipher(algorithms.AES(bytes.fromhex(key_hex)), modes.CBC(_ZERO_IV)).decryptor()
    plain = decryptor.update(data) + decryptor.finalize()
    try:
        clear = plain.decode("ascii")
    except UnicodeDecodeError:
        raise DecodeError("decrypt_failed", "decrypted DC-09 block is not ASCII") from None
    _pad, sep, after = clear.partition("|")
    if not sep:
        tail = _NULL_TAIL_RE.search(clear) if null else None
        if tail is not None and "[" not in clear and clear.count("]") == 1:
            return "]" + tail[1]
        raise DecodeError("decrypt_failed", "decrypted DC-09 block has no pad separator")
    return after


@dataclass(frozen=True, slots=True)
class Block:
    """The clear part of a frame: data block, xdata blocks (letter, value), stamp."""

    data: str
    xdata: tuple[tuple[str, str], ...]
    stamp: str | None


def _data_end(rest: str) -> int:
    """Index of the ``]`` that closes the data block; ``^…^`` texts may hold ``]``."""
    i = 0
    while i < len(rest):
        ch = rest[i]
        if ch == "]":
            return i
        if ch == "^":
            close = rest.find("^", i + 1)
            # An unpaired caret is an ordinary character.
            i = close + 1 if close >= 0 else i + 1
        else:
            i += 1
    return -1


def split_rest(rest: str, *, encrypted: bool) -> Block:
    """Split ``data "]" *xdata [stamp]``; a decrypted part must carry its stamp."""
    code = "decrypt_failed" if encrypted else "unknown_format"
    end = _data_end(rest)
    if end < 0:
        raise DecodeError(code, "DC-09 data block is not closed by ']'")
    pos = end + 1
    blocks: list[tuple[str, str]] = []
    while pos < len(rest) and rest[pos] == "[":
        close = rest.find("]", pos + 1)
        inner = rest[pos + 1 : close] if close >= 0 else ""
        if close < 0 or "[" in inner or not inner or not "A" <= inner[0] <= "Z":
            raise DecodeError(code, "DC-09 xdata block malformed")
        blocks.append((inner[0], inner[1:]))
        pos = close + 1
    tail = rest[pos:]
    stamp: str | None = None
    if tail:
        if not (tail.startswith("_") and _STAMP_RE.fullmatch(tail, 1)):
            raise DecodeError(code, "DC-09 frame has trailing bytes after data and xdata")
        stamp = tail[1:]
    elif encrypted:
        raise DecodeError(code, "encrypted DC-09 frame has no time stamp")
    return Block(data=rest[:end], xdata=tuple(blocks), stamp=stamp)


def parse_stamp(text: str) -> datetime | None:
    """``HH:MM:SS,MM-DD-YYYY`` in UTC, or None when it is not a valid time."""
    m = _STAMP_RE.fullmatch(text.strip())
    if m is None:
        return None
    hh, mi, ss, mo, dd, yyyy = (int(g) for g in m.groups())
    try:
        return datetime(yyyy, mo, dd, hh, mi, ss, tzinfo=UTC)
    except ValueError:
        return None


def frame_stamp(text: str) -> datetime:
    """The frame's time stamp; one that matched the layout but is no date is invalid."""
    when = parse_stamp(text)
    if when is None:
        raise ValidationError("invalid_value", "DC-09 time stamp is not a valid date and time")
    return when
