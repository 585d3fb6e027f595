"""A TCP proxy the fault tests put between the worker and a dependency.

``cut()`` makes the dependency unreachable the way a crashed server or a lost
network path does: every open connection is reset (both sides, so the server
also sees its client vanish and rolls back what was in flight) and the listening
socket is closed, so new connections are refused. ``restore()`` listens again
on the same port; clients reconnect on their own.

The proxy runs its own event loop in a daemon thread, so a test that blocks
(waiting for a process, sleeping) never stalls the traffic it relays.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

T = TypeVar("T")

_CHUNK = 256 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def via(url: str, port: int) -> str:
    """``url`` (a DSN or a Redis URL) with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def target_of(url: str) -> tuple[str, int]:
    """Host and port a DSN or Redis URL points at."""
    parts = urlsplit(url)
    default = 6379 if parts.scheme.startswith("redis") else 5432
    return parts.hostname or "127.0.0.1", parts.port or default


class TcpProxy:
    """Relays 127.0.0.1:<port> to ``target``; can cut and restore the path."""

    def __init__(self, target_host: str, target_port: int, *, port: int | None = None) -> None:
        self.target = (target_host, target_port)
        self.port = port or _free_port()
        self.accepted = 0
        self.refused_upstream = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="proxy")
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()

    @classmethod
    def for_url(cls, url: str) -> TcpProxy:
        return cls(*target_of(url))

    def url(self, url: str) -> str:
        return via(url, self.port)

    # --- control, called from the test's thread --------------------------------
    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def cut(self) -> None:
        """Reset every open connection and refuse new ones."""
        self._call(self._cut())

    def restore(self) -> None:
        """Accept connections again (on the same port)."""
        self._call(self._listen())

    @property
    def open_connections(self) -> int:
        return len(self._pairs)

    @property
    def listening(self) -> bool:
        return self._server is not None

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # --- inside the proxy's loop -------------------------------------------------
    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._serve, "127.0.0.1", self.port, reuse_address=True
            )

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for client, upstream in list(self._pairs):
            # abort, not close: a reset, with nothing flushed, as when a host dies
            client.transport.abort()
            upstream.transport.abort()
        self._pairs.clear()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is None:  # accepted just before a cut
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            self.refused_upstream += 1
            writer.transport.abort()
            return
        self.accepted += 1
        pair = (writer, up_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._pairs.discard(pair)
            writer.transport.abort()
            up_writer.transport.abort()


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(_CHUNK):
            dst.write(data)
            await dst.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        # half-close towards the peer so an orderly goodbye stays orderly
        with contextlib.suppress(OSError, RuntimeError):
            if dst.can_write_eof() and not dst.transport.is_closing():
                dst.write_eof()
