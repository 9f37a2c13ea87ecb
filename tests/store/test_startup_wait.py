"""A process that starts while PostgreSQL is down waits for it (``app.open_when_ready``)
instead of exiting: replicas restarted during a database restart come up with it."""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit, urlunsplit

import pytest

from service.app import open_when_ready
from service.errors import StoreUnavailable
from service.store.postgres.store import PostgresStore
from tests import backends

pytestmark = pytest.mark.postgres_only


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def via(port: int) -> str:
    parts = urlsplit(backends.CURRENT.url)
    netloc = f"{parts.username}@127.0.0.1:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


async def forward_to_postgres(port: int) -> asyncio.Server:
    """From then on, ``port`` leads to the test's PostgreSQL server."""
    target = urlsplit(backends.CURRENT.url)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(target.hostname, target.port or 5432)
        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))

    return await asyncio.start_server(handle, "127.0.0.1", port)


async def test_a_database_that_never_comes_gives_up_after_the_wait() -> None:
    store = PostgresStore(via(free_port()))
    started = asyncio.get_running_loop().time()
    with pytest.raises(StoreUnavailable):
        await open_when_ready(store, wait_s=0.7)
    assert asyncio.get_running_loop().time() - started >= 0.5


async def test_a_database_that_comes_up_late_is_waited_for() -> None:
    port = free_port()
    store = PostgresStore(via(port))

    async def later() -> asyncio.Server:
        await asyncio.sleep(0.6)
        return await forward_to_postgres(port)

    arriving = asyncio.create_task(later())
    applied = await open_when_ready(store, wait_s=10)
    server = await arriving
    try:
        assert applied  # it migrated the fresh schema once the server answered
        assert await store.balance("acct_none") == 0
    finally:
        await store.close()
        server.close()
