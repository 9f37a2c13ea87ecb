"""A lean HTTP/1.1 client for the open loop: keep-alive connections, each request written as
bytes prepared before the clock starts, each answer read with httptools (uvicorn's parser).

The open loop shares a CPU with what it measures: in the web + worker deployment, the worker
and the subscriber's receiver run beside it. aiohttp's client took ~0.66 ms of CPU per request
at 500 requests/s there — a third of that CPU, which queued the worker's and the receiver's
work, and the client's own sends, behind it. This client does only what the open loop needs:
one request at a time per connection, the status code, the whole answer read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlsplit

import httptools

_TIMEOUT_S = 60.0
#: a connection idle longer than this is closed rather than reused: uvicorn closes idle ones
#: after 5 s, and one it closes as a request goes out would fail that request
_IDLE_S = 2.0


def encode_post(base: str, path: str, headers: Mapping[str, str], body: bytes) -> bytes:
    """The bytes of one ``POST`` (HTTP/1.1, keep-alive, ``Content-Length`` framing)."""
    host = urlsplit(base).netloc
    lines = [f"POST {path} HTTP/1.1", f"host: {host}", f"content-length: {len(body)}"]
    lines += [
        f"{name}: {value}"
        for name, value in headers.items()
        if name.lower() not in ("host", "content-length")
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Connection(asyncio.Protocol):
    """One keep-alive connection; ``request`` resolves to the answer's status once it is all
    read (or fails if the connection drops or the answer cannot be parsed)."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[int] | None = None
        self._status = 0
        self.reusable = True
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not registered as asyncio.Transport subclasses: no isinstance
        self._transport = cast(asyncio.Transport, transport)

    def usable(self, now: float) -> bool:
        """Open, kept alive by the server, and not idle for so long the server may close it."""
        return (
            self.reusable
            and self._transport is not None
            and not self._transport.is_closing()
            and now - self.idle_since < _IDLE_S
        )

    def request(self, data: bytes) -> asyncio.Future[int]:
        assert self._transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self._transport.write(data)
        return self._answer

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"unreadable answer: {exc}"))

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self.reusable = self._parser.should_keep_alive()

    def on_message_complete(self) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(self._status)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("the server closed the connection"))

    def _fail(self, exc: Exception) -> None:
        self.reusable = False
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc)
        self.close()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class RawClient:
    """Up to ``limit`` requests in flight to ``base``, over connections kept open between them."""

    def __init__(self, base: str, limit: int) -> None:
        split = urlsplit(base)
        self._host = split.hostname or "127.0.0.1"
        self._port = split.port or 80
        self._slots = asyncio.Semaphore(limit)
        self._idle: list[_Connection] = []

    async def send(self, data: bytes) -> int:
        """Send one prepared request (``encode_post``); its answer's status."""
        loop = asyncio.get_running_loop()
        async with self._slots:
            conn = self._reuse(loop.time())
            if conn is None:
                _, conn = await loop.create_connection(_Connection, self._host, self._port)
            answer = conn.request(data)
            timer = loop.call_later(_TIMEOUT_S, _expire, answer, conn)
            try:
                status = await answer
            except BaseException:
                conn.close()
                raise
            finally:
                timer.cancel()
            if conn.reusable:
                conn.idle_since = loop.time()
                self._idle.append(conn)
            else:
                conn.close()
            return status

    def _reuse(self, now: float) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.usable(now):
                return conn
            conn.close()
        return None

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


def _expire(answer: asyncio.Future[int], conn: _Connection) -> None:
    if not answer.done():
        answer.set_exception(TimeoutError("no answer within the timeout"))
        conn.close()
