"""A real PostgreSQL restart (a throwaway server of the session's own, fast shutdown: sessions
ended by the server, in-flight transactions rolled back) under load, with the workers running:
the same guarantees as a cut, and the service reconnects by itself when the server is back."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest

from service.store.postgres.admin import create_database
from tests.faults.live import Load, check_nothing_lost, live_app
from tools.soak.postgres import OwnedServer

pytestmark = pytest.mark.postgres_only


async def fresh_database(server: OwnedServer) -> str:
    return await create_database(server.url, f"th_pgfault_{secrets.token_hex(4)}")


async def test_a_server_restart_under_load_loses_nothing_and_heals(
    tmp_path: Path, throwaway_pg: OwnedServer
) -> None:
    url = await fresh_database(throwaway_pg)
    async with live_app(tmp_path, url) as live:
        live.direct_url = url
        load = Load(live)
        try:
            async with load.running(clients=6):
                await asyncio.sleep(1.5)
                await throwaway_pg.stop("fast")
                await asyncio.sleep(1.0)
                await throwaway_pg.start()
                before = len(load.acked)
                await asyncio.sleep(2.5)
        finally:
            await throwaway_pg.start()  # running for the next test, whatever this one did
        assert len(load.acked) > before, "no task was accepted after the restart"
        assert (await live.http.get("/readyz")).status_code == 200
        await check_nothing_lost(live, load)
