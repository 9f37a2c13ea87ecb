"""The issue's second reference for ingest: a durable, group-committed, single-row SQLite write.

The bare server (``tools.bench.bare``) is the HTTP stack's ceiling; this is that same server
with the least a durable callback endpoint must do added: each request's body becomes one row,
and the answer waits until a ``COMMIT`` with ``synchronous = FULL`` in WAL mode (an fsync) has
made the row durable. Requests that arrive while a group commits form the next group, written
with one ``executemany`` and one ``COMMIT`` in a writer thread, so the event loop only queues
rows and wakes the waiters. No token, signature, ledger, event or delivery: the ratio
ingest / durable is the share of a durable write's ceiling that taskhook's own work leaves.

Run: ``python -m tools.bench.durable --port N --database PATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.delivery.dispatch import Recorder
from tools.bench.bare import CALLBACK_PATH, healthz, run_server

SCHEMA = "CREATE TABLE IF NOT EXISTS writes (id INTEGER PRIMARY KEY, at REAL, body BLOB)"


class GroupWriter:
    """Rows queued on the event loop, written and committed a group at a time in one thread.

    The grouping is the delivery worker's ``Recorder``: what is queued while one group commits
    is the next group, and a request cancelled meanwhile leaves the others' answers alone."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode = WAL", "synchronous = FULL"):
            self._conn.execute(f"PRAGMA {pragma}").fetchall()
        self._conn.execute(SCHEMA)
        self._groups: Recorder[tuple[float, bytes]] = Recorder(self._write_group)
        self.commits = 0
        self.rows = 0

    async def write(self, body: bytes) -> None:
        """Returns once ``body`` is a committed row."""
        await self._groups.submit((time.time(), body))

    async def _write_group(self, rows: list[tuple[float, bytes]]) -> list[bool]:
        await asyncio.to_thread(self._commit, rows)
        self.commits += 1
        self.rows += len(rows)
        return [True] * len(rows)

    def _commit(self, rows: list[tuple[float, bytes]]) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany("INSERT INTO writes (at, body) VALUES (?, ?)", rows)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self._conn.close()


def create_app(path: Path) -> Starlette:
    writer: GroupWriter | None = None

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        nonlocal writer
        writer = GroupWriter(path)
        try:
            yield
        finally:
            writer.close()

    async def callback(request: Request) -> Response:
        assert writer is not None
        await writer.write(await request.body())
        return Response(status_code=200)

    async def stats(_request: Request) -> Response:
        assert writer is not None
        return JSONResponse({"rows": writer.rows, "commits": writer.commits})

    return Starlette(
        routes=[
            Route(CALLBACK_PATH, callback, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/stats", stats, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database", type=Path, required=True)
    args = parser.parse_args()
    run_server(create_app(args.database), args.port)


if __name__ == "__main__":
    main()
