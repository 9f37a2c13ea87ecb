"""The bench's PostgreSQL side and the figures it adds, run for real: databases created and
dropped on a real server, a SQLite seed copied in with COPY, the server's CPU read from /proc,
the two-port load generator, the receiver's duplicate count, the PG/SQLite table and the cost
model's projection.

Tests that need PostgreSQL (127.0.0.1:5432, or ``TASKHOOK_TEST_POSTGRES_URL``) skip, saying so,
when it is not reachable — and fail instead when ``TASKHOOK_REQUIRE_POSTGRES=1``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from service.app import open_store
from service.core.clock import system_clock
from service.core.ledger import TaskStatus
from service.core.pagination import PageRequest
from service.settings import load_settings
from service.store.base import TaskFilter
from service.store.postgres.admin import is_postgres_url as is_postgres
from tests.conftest import SECRET
from tools.bench import pgseed, processes, scaledb, seed
from tools.bench.costs import project
from tools.bench.load import Request, client_pool, closed_loop_parallel
from tools.bench.pgserver import PgServer, ServerCpu, database_name
from tools.bench.receiver import Receiver, bind, serve_in_process
from tools.bench.report import table
from tools.bench.results import Metric, Outcome
from tools.bench.stores import SQLITE, BenchStore, clone, provision

URL = os.environ.get("TASKHOOK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
async def pg() -> PgServer:
    server = PgServer(URL)
    if not await server.reachable():
        message = f"PostgreSQL is not reachable at {URL}"
        if os.environ.get("TASKHOOK_REQUIRE_POSTGRES") == "1":
            pytest.fail(message + " and TASKHOOK_REQUIRE_POSTGRES=1")
        pytest.skip(message + " (set TASKHOOK_REQUIRE_POSTGRES=1 to make this a failure)")
    return server


async def _exists(server: PgServer, name: str) -> bool:
    conn = await asyncpg.connect(server.admin_url)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))
    finally:
        await conn.close()


def test_urls_name_the_server_and_its_databases() -> None:
    server = PgServer("postgresql://postgres@127.0.0.1:5432")
    assert server.admin_url == "postgresql://postgres@127.0.0.1:5432/postgres"
    assert server.url_for("th_x") == "postgresql://postgres@127.0.0.1:5432/th_x"
    assert server.local
    assert not PgServer("postgresql://u@db.example.com/x").local
    assert database_name("postgresql://u@h:1/abc") == "abc"
    assert is_postgres("postgresql://u@h/d")
    assert not is_postgres("sqlite:///x.db")


async def test_a_database_per_scenario_is_created_then_dropped(pg: PgServer) -> None:
    async with pg.database("test") as url:
        name = database_name(url)
        assert name.startswith("th_bench_test_")
        assert await _exists(pg, name)
        conn = await asyncpg.connect(url)  # left open: the drop must end it
        await conn.execute("CREATE TABLE t (id int)")
    assert not await _exists(pg, name)
    assert conn.is_closed() or not await _alive(conn)


async def _alive(conn: asyncpg.Connection) -> bool:
    try:
        await conn.fetchval("SELECT 1")
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False
    return True


def _sqlite_seed(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE accounts (id TEXT PRIMARY KEY, enabled INTEGER, meta TEXT);"
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, account_id TEXT REFERENCES accounts(id),"
        " payload BLOB, extra TEXT);"
        "INSERT INTO accounts VALUES ('a1', 1, '{\"k\": 1}'), ('a2', 0, '{}');"
    )
    conn.executemany(
        "INSERT INTO events VALUES (?, ?, ?, ?)",
        [(n, "a1" if n % 2 else "a2", b'{"n": %d}' % n, "only in SQLite") for n in range(1, 301)],
    )
    conn.commit()
    conn.close()


async def test_a_sqlite_seed_is_copied_in_with_its_types_and_indexes(
    pg: PgServer, tmp_path: Path
) -> None:
    """Parents before children, booleans from 0/1, jsonb from text, text from bytes, columns
    the PostgreSQL schema lacks left out, triggers not fired, secondary indexes rebuilt,
    sequences moved on."""
    seed_path = tmp_path / "seed.db"
    _sqlite_seed(seed_path)
    async with pg.database("copy") as url:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "CREATE TABLE events (seq bigserial PRIMARY KEY, account_id text NOT NULL,"
                " payload jsonb NOT NULL);"
                "CREATE TABLE accounts (id text PRIMARY KEY, enabled boolean NOT NULL,"
                " meta jsonb NOT NULL);"
                "ALTER TABLE events ADD FOREIGN KEY (account_id) REFERENCES accounts(id);"
                "CREATE INDEX events_by_account ON events (account_id, seq);"
                "CREATE TABLE counted (n int NOT NULL); INSERT INTO counted VALUES (0);"
                "CREATE FUNCTION count_one() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN UPDATE counted SET n = n + 1; RETURN NEW; END $$;"
                "CREATE TRIGGER events_counted AFTER INSERT ON events"
                " FOR EACH ROW EXECUTE FUNCTION count_one();"
            )
            copied = await pgseed.copy_from_sqlite(seed_path, url)
            assert copied == {"accounts": 2, "events": 300}
            # copied rows do not fire the schema's triggers; the service's own writes do
            assert await conn.fetchval("SELECT n FROM counted") == 0
            assert await conn.fetchval("SELECT count(*) FROM accounts WHERE enabled") == 1
            assert await conn.fetchval("SELECT payload->>'n' FROM events WHERE seq = 7") == "7"
            assert await conn.fetchval(
                "SELECT count(*) FROM pg_indexes WHERE indexname = 'events_by_account'"
            ) == 1  # fmt: skip
            assert await conn.fetchval(
                "INSERT INTO events (account_id, payload) VALUES ('a1', '{}') RETURNING seq"
            ) == 301  # fmt: skip
            assert await conn.fetchval("SELECT n FROM counted") == 1
            store = BenchStore("PostgreSQL", seed_path, url, pg)
            assert await store.one("SELECT count(*), sum(seq) FROM events") == (301, 45451)
        finally:
            await conn.close()


async def test_a_template_database_is_cloned_for_a_run(pg: PgServer, tmp_path: Path) -> None:
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(pg.database("tmpl"))
        conn = await asyncpg.connect(url)
        await conn.execute("CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2)")
        await conn.close()
        template = BenchStore("PostgreSQL", tmp_path / "seed.db", url, pg)
        async with contextlib.AsyncExitStack() as run:
            copy = await clone(run, template, "run", tmp_path / "unused.db")
            assert copy.url != url
            assert await copy.one("SELECT count(*) FROM t") == (2,)
            name = database_name(copy.url or "")
        assert not await _exists(pg, name)


async def test_sqlite_stores_read_counts_and_clone_as_files(tmp_path: Path) -> None:
    seed_path = tmp_path / "seed.db"
    _sqlite_seed(seed_path)
    store = BenchStore(SQLITE, seed_path)
    assert store.env() == {}
    assert store.server_cpu() is None
    async with contextlib.AsyncExitStack() as stack:
        copy = await clone(stack, store, "x", tmp_path / "run" / "taskhook.db")
    assert await copy.one("SELECT count(*) FROM events") == (300,)


async def test_the_servers_cpu_on_a_database_is_counted(pg: PgServer) -> None:
    """A backend busy on our database shows up in its CPU; one on another does not."""
    async with pg.database("cpu") as url, pg.database("other") as other_url:
        ours, theirs = await asyncpg.connect(url), await asyncpg.connect(other_url)
        try:
            cpu = ServerCpu(pg, database_name(url), interval_s=0.05)
            await cpu.start()
            busy = "SELECT count(*) FROM generate_series(1, 3000000)"
            await ours.fetchval(busy)
            await theirs.fetchval(busy)
            await asyncio.sleep(0.1)
            backends, aux = await cpu.stop()
        finally:
            await ours.close()
            await theirs.close()
    assert 0.05 < backends < 5.0, backends
    assert aux >= 0.0


async def test_the_receiver_counts_a_webhook_id_arriving_twice() -> None:
    receiver = Receiver()
    sock = bind()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server, serving = await serve_in_process(receiver, sock)
    try:
        async with aiohttp.ClientSession() as session:
            for webhook_id in ("msg_a", "msg_b", "msg_a"):
                async with session.post(f"{url}/hooks", headers={"webhook-id": webhook_id}):
                    pass
            async with session.get(f"{url}/_stats") as response:
                assert (await response.json())["duplicates"] == 1
            async with session.get(f"{url}/_reset") as response:
                assert (await response.json())["duplicates"] == 0
            async with session.post(f"{url}/hooks", headers={"webhook-id": "msg_a"}):
                pass
            async with session.get(f"{url}/_stats") as response:
                found = await response.json()
            assert (found["count"], found["duplicates"]) == (4, 0)
    finally:
        server.should_exit = True
        await serving
        sock.close()


async def test_the_load_generator_sends_to_two_ports_alternately() -> None:
    receivers = [Receiver(), Receiver()]
    socks = [bind(), bind()]
    served = [await serve_in_process(r, s) for r, s in zip(receivers, socks, strict=True)]
    bases = [f"http://127.0.0.1:{s.getsockname()[1]}" for s in socks]
    pool = client_pool(2)
    try:
        requests = [Request("/hooks", {}, b"x") for _ in range(200)]
        result = await closed_loop_parallel(pool, 2, bases, requests, concurrency=4, duration_s=5.0)
    finally:
        pool.shutdown()
        for server, task in served:
            server.should_exit = True
            await task
        for sock in socks:
            sock.close()
    assert result.ok == 200
    assert [r.count for r in receivers] == [100, 100]


def test_the_table_sets_postgres_beside_sqlite_with_the_ratio() -> None:
    outcome = Outcome()
    outcome.metrics.append(Metric("1 ingest", "rate", "1/s", [1000.0, 1200.0, 1100.0]))
    outcome.metrics.append(
        Metric("1 ingest", "rate", "1/s", [880.0], target=(">=", 800), backend="PostgreSQL")
    )
    outcome.metrics.append(Metric("1 ingest", "server CPU", "µs", [300.0], backend="PostgreSQL"))
    text = table(outcome)
    header, _rule, row, pg_only, *_ = text.splitlines()
    assert "PG/SQLite" in header
    assert "SQLite median" in header
    assert "1,100 1/s" in row
    assert "880 1/s" in row
    assert ">= 800 pass" in row
    assert row.rstrip().endswith("0.80x")
    assert pg_only.split()[2:4] == ["server", "CPU"]
    assert "300 µs" in pg_only


def test_the_cost_model_projects_hosts_up_to_the_database_ceiling() -> None:
    lines = project(600.0, 400.0, 250.0, host_cores=2, db_cores=2, hosts=(1, 2, 4, 8, 16))
    assert lines[0].per_host == pytest.approx(2000.0)
    assert lines[0].db_ceiling == pytest.approx(8000.0)
    assert [p.throughput for p in lines] == pytest.approx([2000, 4000, 8000, 8000, 8000])
    assert [p.limit for p in lines] == ["hosts", "hosts", "hosts", "database", "database"]
    assert project(600.0, 400.0, None, host_cores=2, db_cores=2)[-1].limit == "hosts"


async def test_top_statements_are_read_when_the_server_keeps_them(pg: PgServer) -> None:
    """Empty when ``pg_stat_statements`` is not loaded; else this database's statements."""
    async with pg.database("stmts") as url:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("CREATE TABLE t (n int)")
            for n in range(5):
                await conn.execute("INSERT INTO t VALUES ($1)", n)
        finally:
            await conn.close()
        top = await pg.top_statements(database_name(url))
    assert top == [] or any("INSERT INTO t" in line for line in top)


async def test_a_scale_seed_copied_into_the_service_schema_reads_the_same(
    pg: PgServer, tmp_path: Path
) -> None:
    """The seeded rows satisfy PostgreSQL's schema (the service's migrations), and the
    PostgreSQL store reads them as the SQLite store does: counts, trigger-kept status counts,
    a task, a balance, the due backlog."""
    count, now = 600, system_clock()
    path = tmp_path / "taskhook.db"
    specs = [scaledb._endpoints(n) for n in range(scaledb.ACCOUNTS)]
    accounts, counts = await seed.build(
        path, specs, scaledb.plan(count, now), lambda: now, secret_key=SECRET
    )
    async with contextlib.AsyncExitStack() as stack:
        store = await provision(stack, pg, "schema", path, SECRET, tmp_path / "logs")
        assert store.postgres
        sql = (
            "SELECT (SELECT count(*) FROM tasks), (SELECT count(*) FROM deliveries),"
            " (SELECT count(*) FROM attempts), (SELECT count(*) FROM callbacks),"
            " (SELECT n FROM status_counts WHERE kind = 'deliveries' AND status = 'pending')"
        )
        lite = BenchStore(SQLITE, path)
        assert await store.one(sql) == await lite.one(sql)
        assert (await store.one(sql))[:3] == (count, counts.deliveries, counts.attempts)
        env = processes.service_env(tmp_path / "pg", SECRET, **store.env())
        service_store = open_store(load_settings(env))
        await service_store.open()
        try:
            account = accounts[0].id
            page = await service_store.list_tasks(
                account, TaskFilter(status="failed"), PageRequest(limit=5)
            )
            assert page
            assert all(t.state.status is TaskStatus.FAILED for t in page)
            assert await service_store.get_task(account, page[0].id) == page[0]
            claimed = await service_store.claim_due_deliveries(system_clock(), 60_000, 10_000)
            assert len(claimed) == counts.pending_due > 0
        finally:
            await service_store.close()
