"""A receiver's side of SIA DC-09: read a frame's header, build the reply.

The receiver answers every frame it reads with one of the standard's receiver
responses (docs/formats.md 1.13): ``ACK`` (the frame is accepted), ``NAK``
(its time stamp is outside the accepted window; the reply carries the
receiver's clock so the transmitter can correct its own) or ``DUH`` (the
frame cannot be understood). A reply echoes the sequence number, receiver,
line and account exactly as the frame wrote them: a field the frame left out
is left out of the reply.

Pure functions. Keys and decrypted text never appear in a return value other
than the encrypted reply itself.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from pipeline.decoders.alarm.dc09 import crc16_arc, frame_text, strip_frame

ReplyKind = Literal["ACK", "NAK", "DUH"]

_HEADER_RE: Final = re.compile(
    r'([0-9A-Fa-f]{4})([0-9A-Fa-f]{4})"(\*?)([^"]{0,20})"([0-9A-Fa-f]{4})'
    r"(?:R([0-9A-Fa-f]{1,6}))?(?:L([0-9A-Fa-f]{1,6}))?(?:#([0-9A-Fa-f]{3,16}))?\["
)
_STAMP_TAIL_RE: Final = re.compile(r"_([0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{2}-[0-9]{2}-[0-9]{4})$")
_ZERO_IV: Final = bytes(16)
_AES_BLOCK: Final = 16
#: pad characters: printable, never ``|``, ``[`` or ``]`` (the pad ends at the first ``|``)
_PAD_CHARS: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


@dataclass(frozen=True, slots=True)
class Header:
    """What a reply echoes, and what the receiver checks before answering."""

    crc: str
    encrypted: bool
    token: str
    seq: str
    rcvr: str | None
    line: str | None
    account: str | None
    #: the frame after its opening ``[`` (ciphertext for ``*`` frames)
    rest: str
    #: the bytes the CRC covers
    body: bytes

    @property
    def crc_ok(self) -> bool:
        return crc16_arc(self.body) == int(self.crc, 16)


def read_header(raw: bytes) -> Header | None:
    """The header of one frame (LF/CR optional), or None when there is none to read."""
    raw = strip_frame(raw)
    text = frame_text(raw)
    m = _HEADER_RE.match(text)
    if m is None:
        return None
    return Header(
        crc=m[1],
        encrypted=m[3] == "*",
        token=m[4],
        seq=m[5],
        rcvr=m[6],
        line=m[7],
        account=m[8],
        rest=text[m.end() :],
        body=raw[8:],
    )


def stamp_text(when: datetime) -> str:
    """The DC-09 time stamp of ``when`` (UTC): ``_HH:MM:SS,MM-DD-YYYY``."""
    return f"_{when:%H:%M:%S,%m-%d-%Y}"


def trailing_stamp(clear: str) -> str | None:
    """The ``HH:MM:SS,MM-DD-YYYY`` that ends a clear frame body, if any."""
    m = _STAMP_TAIL_RE.search(clear)
    return m[1] if m else None


def wrap(body: str) -> bytes:
    """``LF crc 0LLL body CR``: CRC-16/ARC and hex length over the body."""
    data = body.encode("ascii")
    return b"\n" + f"{crc16_arc(data):04X}{len(data):04X}".encode() + data + b"\r"


def encrypt_hex(clear: str, key_hex: str) -> str:
    """Pad at the front up to whole AES blocks, ``|``, then ``clear``; AES-CBC, zero IV."""
    need = len(clear) + 1
    pad_len = (-need) % _AES_BLOCK
    pad = "".join(secrets.choice(_PAD_CHARS) for _ in range(pad_len))
    plain = (pad + "|" + clear).encode("ascii")
    encryptor = Cipher(algorithms.AES(bytes.fromhex(key_hex)), modes.CBC(_ZERO_IV)).encryptor()
    return (encryptor.update(plain) + encryptor.finalize()).hex().upper()


def _address(header: Header) -> str:
    parts = [header.seq]
    if header.rcvr is not None:
        parts.append(f"R{header.rcvr}")
    if header.line is not None:
        parts.append(f"L{header.line}")
    if header.account is not None:
        parts.append(f"#{header.account}")
    return "".join(parts)


def ack(header: Header, now: datetime, key_hex: str | None = None) -> bytes:
    """``ACK`` for an accepted frame; encrypted with ``key_hex`` when the frame was."""
    stamp = stamp_text(now)
    if header.encrypted:
        if key_hex is None:
            raise ValueError("an encrypted frame is acknowledged with its account's key")
        return wrap(f'"*ACK"{_address(header)}[{encrypt_hex("]" + stamp, key_hex)}')
    return wrap(f'"ACK"{_address(header)}[]{stamp}')


def nak(now: datetime) -> bytes:
    """``NAK`` with the receiver's time; the standard gives it no sequence or account."""
    return wrap(f'"NAK"0000R0L0A0[]{stamp_text(now)}')


def duh(header: Header | None, now: datetime) -> bytes:
    """``DUH`` echoing what could be read of the frame (zeros when nothing could)."""
    address = "0000R0L0A0" if header is None else _address(header)
    return wrap(f'"DUH"{address}[]{stamp_text(now)}')
