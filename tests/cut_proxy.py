"""A TCP proxy between the service under test and its PostgreSQL server, that a test can cut.

The service is pointed at the proxy (``proxied_url``), never at the server, so a test can take
the database away without touching the server everyone else shares: ``cut()`` resets every
open connection and refuses new ones (the listening socket is closed: a connect gets
``ECONNREFUSED``, as from a server that is down), ``black_hole()`` keeps accepting but never
forwards a byte either way (a server that hangs, a network that drops packets: only timeouts
end it), and ``restore()`` lets traffic through again on the same port.

It runs on the test's own event loop (asyncio streams), one pair of pumps per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

#: SO_LINGER on, timeout 0: close() sends RST, not FIN (the peer sees the connection reset)
_RESET = struct.pack("ii", 1, 0)


class CutProxy:
    """Forwards ``127.0.0.1:port`` to ``target``; ``port`` stays the same across cuts."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.mode = "open"  # "open" | "cut" | "black_hole"
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.accepted = 0

    async def start(self) -> None:
        await self._listen()

    async def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._accept, sock=sock)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.mode == "cut":  # a connect that raced the close of the listener
            _reset(writer)
            return
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        self._writers.add(writer)
        try:
            if self.mode == "black_hole":
                await _swallow(reader)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                _reset(writer)
                return
            self._writers.add(up_writer)
            try:
                await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
            finally:
                self._writers.discard(up_writer)
                _reset(up_writer)
        except asyncio.CancelledError:
            pass
        finally:
            self._links.discard(task)
            self._writers.discard(writer)
            _reset(writer)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await src.read(65536):
                if self.mode == "black_hole":  # held from now on: nothing more gets through
                    await _swallow(src)
                    return
                dst.write(data)
                await dst.drain()
        # one side closed: close the other, so the pair ends together
        _reset(dst)

    async def _drop_links(self) -> None:
        for writer in list(self._writers):
            _reset(writer)
        links = list(self._links)
        for task in links:
            task.cancel()
        for task in links:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def cut(self) -> None:
        """Every open connection reset; new ones refused (nothing listens on the port)."""
        self.mode = "cut"
        await self._stop_listening()
        await self._drop_links()

    async def black_hole(self) -> None:
        """Nothing answered any more: what is sent on an open connection is swallowed, and new
        connections are accepted and then hang (a server that stopped responding, a network
        that drops packets: only the client's timeouts end it)."""
        self.mode = "black_hole"
        if self._server is None:
            await self._listen()

    async def restore(self) -> None:
        """Traffic flows again, on the same port. Black-holed connections are reset: the
        client sees them fail and opens new ones."""
        was = self.mode
        self.mode = "open"
        if was == "black_hole":
            await self._drop_links()
        if self._server is None:
            await self._listen()

    async def close(self) -> None:
        self.mode = "cut"
        await self._stop_listening()
        await self._drop_links()

    def proxied_url(self, url: str) -> str:
        """``url`` with its host and port swapped for the proxy's."""
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)
        user = f"{netloc[0]}@" if len(netloc) == 2 else ""
        return urlunsplit(
            (parts.scheme, f"{user}127.0.0.1:{self.port}", parts.path, parts.query, "")
        )


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close ``writer``'s connection with a reset (RST), at once."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    writer.transport.abort()


async def _swallow(reader: asyncio.StreamReader) -> None:
    """Read and drop whatever comes, until the peer gives up."""
    with contextlib.suppress(OSError, ConnectionError):
        while await reader.read(65536):
            pass


@contextlib.asynccontextmanager
async def cut_proxy(url: str) -> AsyncIterator[CutProxy]:
    """A running proxy to the server ``url`` names."""
    parts = urlsplit(url)
    proxy = CutProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
