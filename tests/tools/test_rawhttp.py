"""The open loop's lean HTTP/1.1 client, against real servers on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import uvloop

from tools.bench.rawhttp import RawClient, encode_post
from tools.bench.receiver import Receiver, bind, serve_in_process

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serving(handler: Handler) -> tuple[asyncio.Server, str]:
    """A raw server on loopback; each connection closed once ``handler`` is done with it (or
    the client went away)."""

    async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            await writer.wait_closed()

    server = await asyncio.start_server(closing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


class _Answering:
    """A raw server's handler: answers each request on a connection with ``answer`` (request
    bodies are left empty, so reading up to the blank line reads a whole request), noting peers
    and how many were answered; with ``once``, answers one and closes ``linger`` s later."""

    def __init__(self, answer: bytes, *, once: bool = False, linger: float = 0.0) -> None:
        self.answer, self.once, self.linger = answer, once, linger
        self.peers: set[object] = set()
        self.answered = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peers.add(writer.get_extra_info("peername"))
        while True:
            await reader.readuntil(b"\r\n\r\n")
            self.answered += 1
            writer.write(self.answer)
            await writer.drain()
            if self.once:
                await asyncio.sleep(self.linger)
                return


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    app = Receiver(record=True)
    sock = bind()
    server, task = await serve_in_process(app, sock)
    yield app, f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    await task


async def test_posts_arrive_whole_over_connections_kept_open(
    receiver: tuple[Receiver, str],
) -> None:
    app, base = receiver
    client = RawClient(base, limit=4)
    bodies = [f'{{"n": {n}, "pad": "{"x" * n * 37}"}}'.encode() for n in range(60)]
    statuses = await asyncio.gather(
        *(
            client.send(encode_post(base, f"/hooks/{n}", {"webhook-id": f"msg_{n}"}, body))
            for n, body in enumerate(bodies)
        )
    )
    client.close()
    assert statuses == [204] * 60
    assert sorted(a.body for a in app.arrivals) == sorted(bodies)
    assert {a.headers["webhook-id"] for a in app.arrivals} == {f"msg_{n}" for n in range(60)}
    assert all(a.headers["content-length"] == str(len(a.body)) for a in app.arrivals)


async def test_at_most_limit_connections_and_they_are_reused() -> None:
    handler = _Answering(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    server, base = await _serving(handler)
    async with server:
        client = RawClient(base, limit=3)
        request = encode_post(base, "/", {}, b"")
        for _ in range(4):
            assert await asyncio.gather(*(client.send(request) for _ in range(10))) == [200] * 10
        client.close()
    assert handler.answered == 40
    assert 1 <= len(handler.peers) <= 3


async def test_a_server_that_closes_after_each_answer_gets_a_new_connection() -> None:
    handler = _Answering(
        b"HTTP/1.1 503 Busy\r\nconnection: close\r\ncontent-length: 0\r\n\r\n", once=True
    )
    server, base = await _serving(handler)
    async with server:
        client = RawClient(base, limit=1)
        request = encode_post(base, "/", {}, b"")
        assert [await client.send(request) for _ in range(3)] == [503, 503, 503]
        client.close()
    assert len(handler.peers) == 3


async def test_no_answer_or_an_unreadable_one_is_an_error() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")

    async def garble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"this is not HTTP\r\n\r\n")
        await writer.drain()

    for handler in (hang_up, garble):
        server, base = await _serving(handler)
        async with server:
            client = RawClient(base, limit=1)
            with pytest.raises(ConnectionError):
                await asyncio.wait_for(client.send(encode_post(base, "/", {}, b"")), 5)
            client.close()


def test_it_works_on_uvloop_as_the_bench_runs_it() -> None:
    """uvloop's transports are not ``asyncio.Transport`` instances: nothing may rely on that."""

    async def round_trips() -> list[int]:
        server, base = await _serving(
            _Answering(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
        )
        async with server:
            client = RawClient(base, limit=2)
            request = encode_post(base, "/", {}, b"")
            statuses = await asyncio.gather(*(client.send(request) for _ in range(20)))
            client.close()
        return statuses

    assert uvloop.run(round_trips()) == [202] * 20


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_connection_the_server_closed_while_idle_is_not_reused(loop: str) -> None:
    """uvicorn closes a keep-alive connection idle for 5 s: the next request goes out on a new
    one, not into a closed socket (uvloop raises there; asyncio drops it silently)."""

    async def two_requests_apart() -> list[int]:
        # answers, then closes the connection while it is idle, as a keep-alive timeout does
        handler = _Answering(
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", once=True, linger=0.05
        )
        server, base = await _serving(handler)
        async with server:
            client = RawClient(base, limit=1)
            request = encode_post(base, "/", {}, b"")
            first = await asyncio.wait_for(client.send(request), 5)
            await asyncio.sleep(0.2)
            second = await asyncio.wait_for(client.send(request), 5)
            client.close()
        return [first, second]

    runner = uvloop.run if loop == "uvloop" else asyncio.run
    assert runner(two_requests_apart()) == [200, 200]
