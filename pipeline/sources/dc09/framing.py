"""DC-09 frames out of a TCP byte stream.

A frame runs from its LF to its CR. TCP keeps no message boundaries: one read
may hold several frames, or a piece of one, so bytes are kept until the end of
the frame arrives. Some transmitters end a frame with CR LF, leave out the
leading LF, or end with LF alone: the frame ends at the first CR or LF after
its first byte that is not an LF, CR, tab or space. Bytes between frames are
dropped; a frame keeps the LF that came right before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

_GAP: Final = frozenset(b"\n\r\t ")
_CR: Final = 0x0D
_LF: Final = 0x0A


@dataclass(frozen=True, slots=True)
class Oversize:
    """More than ``max_frame_bytes`` arrived without the frame's end."""

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
        buf = self._buf
        out: list[bytes | Oversize] = []
        pos = 0
        while True:
            start = pos
            while start < len(buf) and buf[start] in _GAP:
                start += 1
            if start == len(buf):
                break
            end = _first_end(buf, start)
            if end < 0:
                if len(buf) - start > self._max:
                    out.append(Oversize(len(buf) - start))
                    pos = len(buf)
                break
            size = end + 1 - start
            if size > self._max:
                out.append(Oversize(size))
            else:
                lf = start > pos and buf[start - 1] == _LF
                out.append((b"\n" if lf else b"") + bytes(buf[start : end + 1]))
            pos = end + 1
        del buf[:pos]
        return out


def _first_end(buf: bytearray, start: int) -> int:
    cr = buf.find(_CR, start)
    lf = buf.find(_LF, start)
    if cr < 0:
        return lf
    if lf < 0:
        return cr
    return min(cr, lf)
