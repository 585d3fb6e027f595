"""The listeners: TCP and UDP on the same port, frames to :class:`Receiver`.

TCP: a connection carries any number of frames; each is answered once, in
order, as soon as its CR arrives. A connection is closed when it stays silent
for ``idle_timeout_s``, when it sends a frame over ``max_frame_bytes`` (after
its ``DUH``), or at once when the total or per-address cap is reached. UDP:
one frame per datagram, answered to the sender's address.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Protocol, cast

from pipeline.decoders.alarm.reply import duh
from pipeline.metrics_front_doors import RECEIVER_CONNECTIONS, RECEIVER_REFUSED, RECEIVER_REPLIES
from pipeline.settings.front_doors import ReceiverSettings
from pipeline.sources.dc09.framing import FrameReader, Oversize
from pipeline.sources.dc09.receiver import Transport

log = logging.getLogger(__name__)

_READ_BYTES = 4096


class Answerer(Protocol):
    async def answer(self, raw: bytes, transport: Transport) -> bytes | None: ...


def _oversize_duh() -> bytes:
    RECEIVER_REPLIES.labels("DUH", "oversize").inc()
    return duh(None, datetime.now(UTC))


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, server: DC09Server) -> None:
        self._server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._server.on_datagram(data, addr)


class DC09Server:
    def __init__(self, settings: ReceiverSettings, receiver: Answerer) -> None:
        self._settings = settings
        self._receiver = receiver
        self._tcp: asyncio.Server | None = None
        self._udp: _Datagrams | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._per_peer: Counter[str] = Counter()
        self.port = settings.port

    @property
    def listening(self) -> bool:
        return self._tcp is not None and self._udp is not None

    async def start(self) -> None:
        s = self._settings
        self._tcp = await asyncio.start_server(self._connection, s.host, s.port, limit=_READ_BYTES)
        self.port = self._tcp.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_datagram_endpoint(
            lambda: _Datagrams(self), local_addr=(s.host, self.port)
        )
        self._udp = protocol
        log.info("DC-09 receiver listening on %s:%d (TCP and UDP)", s.host, self.port)

    async def close(self, grace_s: float) -> None:
        """Stop listening; let answers in progress finish for up to ``grace_s``."""
        if self._tcp is not None:
            self._tcp.close()
        if self._udp is not None and self._udp.transport is not None:
            self._udp.transport.close()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()
        self._tcp = None
        self._udp = None

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peername = writer.get_extra_info("peername")
        peer = str(peername[0]) if peername else "?"
        if len(self._tasks) >= self._settings.max_connections:
            RECEIVER_REFUSED.labels("total").inc()
            writer.close()
            return
        if self._per_peer[peer] >= self._settings.max_connections_per_peer:
            RECEIVER_REFUSED.labels("per_peer").inc()
            writer.close()
            return
        self._track(task)
        self._per_peer[peer] += 1
        RECEIVER_CONNECTIONS.inc()
        try:
            await self._serve(reader, writer)
        except (ConnectionError, OSError):
            pass  # the panel went away; nothing is owed to it
        except Exception:  # a bug must cost one connection, never the receiver
            log.exception("DC-09 connection from %s failed", peer)
        finally:
            RECEIVER_CONNECTIONS.dec()
            self._per_peer[peer] -= 1
            if self._per_peer[peer] <= 0:
                del self._per_peer[peer]
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        frames = FrameReader(self._settings.max_frame_bytes)
        while True:
            try:
                data = await asyncio.wait_for(
                    reader.read(_READ_BYTES), self._settings.idle_timeout_s
                )
            except TimeoutError:
                return
            if not data:
                return
            for frame in frames.feed(data):
                if isinstance(frame, Oversize):
                    writer.write(_oversize_duh())
                    await writer.drain()
                    return
                reply = await self._receiver.answer(frame, "tcp")
                if reply is not None:
                    writer.write(reply)
                    await writer.drain()

    def on_datagram(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        udp = self._udp
        if udp is None or udp.transport is None:
            return
        if len(data.strip(b"\n\r")) > self._settings.max_frame_bytes:
            udp.transport.sendto(_oversize_duh(), addr)
            return
        if len(self._tasks) >= self._settings.max_connections:
            RECEIVER_REPLIES.labels("none", "busy").inc()
            return
        self._track(asyncio.create_task(self._datagram(udp.transport, data, addr)))

    async def _datagram(
        self, transport: asyncio.DatagramTransport, data: bytes, addr: tuple[str | int, ...]
    ) -> None:
        try:
            reply = await self._receiver.answer(data, "udp")
        except Exception:  # a bug must cost one frame, never the receiver
            log.exception("DC-09 datagram from %s failed", addr[0])
            return
        if reply is not None and not transport.is_closing():
            transport.sendto(reply, addr)
