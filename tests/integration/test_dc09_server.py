"""The listeners over real sockets, with a stand-in for Kafka: TCP reassembly,
each frame answered once, the caps, the idle timeout and the frame size limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pipeline.decoders.alarm.reply import wrap
from pipeline.settings.front_doors import ReceiverSettings
from pipeline.sources.dc09.server import DC09Server


class Echo:
    """Answers every frame with ``ACK<n>`` so the test sees which frame got which reply."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    async def answer(self, raw: bytes, transport: str) -> bytes | None:
        self.frames.append(raw)
        return f"ACK{len(self.frames)}:{transport}\r".encode()


@asynccontextmanager
async def serving(**settings: object) -> AsyncIterator[tuple[DC09Server, Echo]]:
    echo = Echo()
    server = DC09Server(ReceiverSettings(host="127.0.0.1", port=0, **settings), echo)
    await server.start()
    try:
        yield server, echo
    finally:
        await server.close(1.0)


def frame(seq: int) -> bytes:
    return wrap(f'"NULL"{seq:04d}L0#1234[]')


async def test_two_frames_in_one_segment_and_one_over_many_are_answered_once_each() -> None:
    async with serving() as (server, echo):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(frame(1) + frame(2))
        await writer.drain()
        assert await reader.readuntil(b"\r") == b"ACK1:tcp\r"
        assert await reader.readuntil(b"\r") == b"ACK2:tcp\r"
        third = frame(3)
        for i in range(len(third)):
            writer.write(third[i : i + 1])
            await writer.drain()
        assert await reader.readuntil(b"\r") == b"ACK3:tcp\r"
        writer.close()
    assert echo.frames == [frame(1), frame(2), frame(3)]


async def test_udp_on_the_same_port() -> None:
    async with serving() as (server, echo):
        loop = asyncio.get_running_loop()
        got: asyncio.Future[bytes] = loop.create_future()

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: object) -> None:
                got.set_result(data)

        transport, _ = await loop.create_datagram_endpoint(
            Client, remote_addr=("127.0.0.1", server.port)
        )
        transport.sendto(frame(7))
        assert await asyncio.wait_for(got, 5) == b"ACK1:udp\r"
        transport.close()
    assert echo.frames == [frame(7)]


async def test_per_peer_cap_closes_the_extra_connection_at_once() -> None:
    async with serving(max_connections_per_peer=2) as (server, _):
        held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
        for _, w in held:  # both are served
            w.write(frame(1))
        for r, _ in held:
            assert (await r.readuntil(b"\r")).startswith(b"ACK")
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        for _, w in [*held, (reader, writer)]:
            w.close()


async def test_idle_connection_is_closed() -> None:
    async with serving(idle_timeout_s=0.2) as (server, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


async def test_oversize_frame_gets_duh_and_the_connection_is_closed() -> None:
    async with serving(max_frame_bytes=64) as (server, echo):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"\n" + b"0" * 200)
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(), 5)
        assert b'"DUH"0000R0L0A0[]' in reply
        writer.close()
    assert echo.frames == []
