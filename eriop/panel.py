"""A simulated alarm panel: sends DC-09 frames to a receiver over TCP, as a
panel does: one connection kept open, each frame sent again (same sequence
number, new time stamp) until it is acknowledged, with backoff while the
receiver is away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from datetime import UTC, datetime
from typing import Final

from pipeline.decoders.alarm.dc09 import strip_frame
from pipeline.decoders.alarm.reply import stamp_text, wrap
from pipeline.retry import CONNECT

log = logging.getLogger(__name__)

REPLY_TIMEOUT_S = 5.0
_STAMP: Final = re.compile(r"_[0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{2}-[0-9]{2}-[0-9]{4}$")


def restamp(frame: bytes, now: datetime) -> bytes:
    """The same clear frame stamped ``now`` (CRC and length recomputed)."""
    body = strip_frame(frame).decode("ascii")[8:]
    m = _STAMP.search(body)
    if m is None:
        return frame
    return wrap(body[: m.start()] + stamp_text(now))


class Dc09Panel:
    def __init__(self, host: str, port: int, *, queue_size: int = 1000) -> None:
        self.host = host
        self.port = port
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(queue_size)
        self.acked = 0
        self.retried = 0
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dc09-panel")

    def offer(self, frame: bytes) -> bool:
        """Queue a frame; False when the queue is full (the receiver is far behind)."""
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            return False
        return True

    async def _run(self) -> None:
        backoff = CONNECT.backoff()
        while True:
            frame = await self.queue.get()
            while not await self._exchange(frame):
                self.retried += 1
                await backoff.wait()
            backoff.reset()
            self.acked += 1

    async def _exchange(self, frame: bytes) -> bool:
        try:
            if self._conn is None:
                self._conn = await asyncio.open_connection(self.host, self.port)
            reader, writer = self._conn
            writer.write(restamp(frame, datetime.now(UTC)))
            await writer.drain()
            reply = await asyncio.wait_for(reader.readuntil(b"\r"), REPLY_TIMEOUT_S)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            log.warning("receiver %s:%d: %s", self.host, self.port, type(exc).__name__)
            await self._drop()
            return False
        return b'"ACK"' in reply or b'"*ACK"' in reply

    async def _drop(self) -> None:
        if self._conn is not None:
            writer = self._conn[1]
            self._conn = None
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._drop()
