"""What a frame deserves, before anything is sent anywhere (pure).

The order of checks: a header to read, an event token, the CRC, the key and
decryption for ``*`` frames, then the time stamp against the receiver's
window. The first failure decides: ``DUH`` for a frame that cannot be
understood, ``NAK`` for a stamp outside the window, else the frame is
accepted (and is acknowledged once Kafka has it). Reasons are the
error codes of docs/formats.md 0.1 and never carry a key or decrypted text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal, Protocol

from pipeline.decoders.alarm.dc09 import TOKENS, decrypt_rest, parse_stamp
from pipeline.decoders.alarm.reply import Header, read_header, trailing_stamp
from pipeline.errors import DecodeError

_DATA_ACCOUNT_RE: Final = re.compile(r"#([0-9A-Fa-f]{3,16})\|")


class Keys(Protocol):
    def key_for(self, line: str | None, account: str | None) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Window:
    """Accepted stamps: from ``past_s`` before the receiver's clock to ``future_s`` after."""

    past_s: float = 40.0
    future_s: float = 20.0

    def holds(self, stamp: datetime, now: datetime) -> bool:
        return (
            now - timedelta(seconds=self.past_s) <= stamp <= now + timedelta(seconds=self.future_s)
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: Literal["accept", "NAK", "DUH"]
    #: ``ok`` or the error code that decided
    reason: str
    header: Header | None
    #: the account's key, to encrypt the ACK of a ``*`` frame
    key: str | None = None
    #: the header's account, else the data block's (``#acct|``, never a ``#0000`` placeholder)
    account: str | None = None

    @property
    def authentic(self) -> bool:
        """The frame is the panel's own (CRC, and key for ``*`` frames): a check-in."""
        return self.kind != "DUH" and self.header is not None


def judge(raw: bytes, keys: Keys, now: datetime, window: Window) -> Verdict:
    header = read_header(raw)
    if header is None or header.token not in TOKENS:
        return Verdict("DUH", "unknown_format", header)
    if not header.crc_ok:
        return Verdict("DUH", "bad_checksum", header)
    key: str | None = None
    if header.encrypted:
        key = keys.key_for(header.line, header.account)
        if key is None:
            return Verdict("DUH", "encrypted_no_key", header)
        try:
            is_null = header.token == "NULL"  # noqa: S105 (a DC-09 token, not a secret)
            clear = decrypt_rest(header.rest, key, null=is_null)
        except DecodeError:
            return Verdict("DUH", "decrypt_failed", header)
        stamp_text = trailing_stamp(clear)
        if stamp_text is None:
            # an encrypted frame must carry its stamp (docs/formats.md 1.3)
            return Verdict("DUH", "decrypt_failed", header)
    else:
        clear = header.rest
        stamp_text = trailing_stamp(clear)
    account = header.account or _data_account(clear)
    if stamp_text is not None:
        stamp = parse_stamp(stamp_text)
        if stamp is None or not window.holds(stamp, now):
            return Verdict("NAK", "timestamp_out_of_window", header, key, account)
    return Verdict("accept", "ok", header, key, account)


def _data_account(clear: str) -> str | None:
    m = _DATA_ACCOUNT_RE.match(clear)
    if m is None or not m[1].strip("0"):
        return None
    return m[1]
