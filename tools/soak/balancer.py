"""A round-robin TCP balancer in front of the ``web`` processes, as a load balancer would be.

Each accepted connection goes to the next ``web`` in turn; one that refuses the connection (it
was killed and is not back yet) is skipped for the next, as a balancer's health check would
skip it. A connection that was open through a ``web`` when it died is closed, so the client
sees the crash as "no answer", exactly as it would without the balancer. When every ``web`` is
down the connection is closed at once.

TCP, not HTTP: it reads nothing, so it cannot change an answer, and it keeps what a client's
keep-alive connection does (stick to one ``web``) while a pool of connections spreads over all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Balancer:
    #: the ``web`` ports, in turn
    backends: list[int]
    #: connections handed to each backend port, and those no backend took
    connections: Counter[str] = field(default_factory=Counter)
    _next: int = 0
    _server: asyncio.Server | None = None
    _pipes: set[asyncio.Task[None]] = field(default_factory=set)
    #: every open socket either side, closed at the end so each pipe ends by itself (a
    #: cancelled connection callback is logged as an error by asyncio's streams)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self, port: int) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        errors: list[str] = []
        first = self._next  # taken once: other connections move ``_next`` while this awaits
        self._next += 1
        for i in range(len(self.backends)):
            port = self.backends[(first + i) % len(self.backends)]
            try:
                pair = await asyncio.open_connection("127.0.0.1", port)
            except OSError as exc:
                errors.append(f":{port} {type(exc).__name__}")
                continue
            self.connections[f"web :{port}"] += 1
            return pair
        self.connections[f"no web took it ({', '.join(errors)})"] += 1
        return None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        self._writers.add(writer)
        try:
            upstream = await self._connect()
            if upstream is None:
                return
            up_reader, up_writer = upstream
            self._writers.add(up_writer)
            try:
                await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
            finally:
                self._writers.discard(up_writer)
                await _shut(up_writer)
        finally:
            self._writers.discard(writer)
            await _shut(writer)
            self._pipes.discard(task)


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until either side ends, then end the other (a dead ``web`` closes its client)."""
    try:
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.close()


async def _shut(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        writer.close()
        await writer.wait_closed()
