"""DC-09 frames out of a TCP byte stream.

A frame runs from an optional LF to its CR. TCP keeps no message boundaries:
one read may hold several frames, or a piece of one, so bytes are kept until
the CR arrives. Bytes between frames (a stray LF after a CR) are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

_CR: Final = 0x0D
_GAP: Final = b"\n\r\t "


@dataclass(frozen=True, slots=True)
class Oversize:
    """More than ``max_frame_bytes`` arrived without a CR."""

    size: int


class FrameReader:
    """Feed it reads; it returns the complete frames (with their LF and CR)."""

    def __init__(self, max_frame_bytes: int) -> None:
        self._max = max_frame_bytes
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes | Oversize]:
        """The frames ``data`` completes; an :class:`Oversize` drops what was kept."""
        self._buf += data
        out: list[bytes | Oversize] = []
        start = 0
        while True:
            end = self._buf.find(_CR, start)
            if end < 0:
                break
            chunk = bytes(self._buf[start : end + 1])
            start = end + 1
            frame = chunk.lstrip(_GAP)
            if len(frame) <= 1:
                continue
            if len(frame) > self._max:
                out.append(Oversize(len(frame)))
                continue
            # keep the frame's own LF, drop whatever came between frames
            lf = chunk[: len(chunk) - len(frame)].endswith(b"\n")
            out.append(b"\n" + frame if lf else frame)
        del self._buf[:start]
        # A frame's leading LF (and any gap before it) is not part of its size.
        if len(self._buf.lstrip(_GAP)) > self._max:
            out.append(Oversize(len(self._buf)))
            self._buf.clear()
        return out
