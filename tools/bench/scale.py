"""Scenario 4: do reads and the worker's claim stay flat as history grows?

The same shape at two sizes (``scaledb``): 1 000 000 tasks with 5 000 000 deliveries against
10 000 with 50 000 (``--quick``: 100 000 against 10 000). Both are served at once by
``python -m service serve`` (workers off, so nothing changes them), and each run sends, to
each in turn, a series of sequential requests — ``GET /v1/tasks?status=…`` cycling through the
statuses, and ``GET /v1/tasks/{id}`` for random tasks of the account — on one keep-alive
connection. The worker's claim runs in-process through the service's own store, inside a
transaction that is rolled back (so every claim finds the same due backlog), timing the claim's
statements alone. Each figure is reported as the ratio big / small of its p99, per run.

With ``--database`` both databases are copied into PostgreSQL (``pgseed``: COPY, indexes built
afterwards, ``ANALYZE``) and measured again; there the claim goes through the store's own
``claim_due_deliveries`` — its statement and its commit — at a clock moved one lease on per
claim, so each finds the same due backlog.
"""

from __future__ import annotations

import contextlib
import random
import sys
import time

import aiohttp

from service.app import open_store
from service.core.clock import system_clock
from service.core.secretbox import SecretBox
from service.settings import load_settings
from service.store.postgres.store import PostgresStore
from service.store.sqlite import SqliteStore
from tools.bench import processes, scaledb
from tools.bench.context import Context
from tools.bench.pgserver import PgServer
from tools.bench.results import Metric, Outcome, percentile
from tools.bench.seed import read_only
from tools.bench.stores import SQLITE, BenchStore, provision

#: what ``open_store`` returns: the store the settings name, SQLite or PostgreSQL
Store = SqliteStore | PostgresStore

NAME = "4 scale"
STATUSES = ("succeeded", "failed", "running", "queued")
CLAIMS = 200
WARMUP = 50


def _task_ids(db: scaledb.ScaleDb, count: int, seed: int) -> list[str]:
    """``count`` random tasks of the account whose key the bench uses."""
    rng = random.Random(seed)  # noqa: S311
    with read_only(db.path) as conn:
        found: list[str] = []
        while len(found) < count:
            rowids = [rng.randint(1, db.tasks) for _ in range(count * scaledb.ACCOUNTS)]
            marks = ", ".join("?" * len(rowids))
            found += [
                row[0]
                for row in conn.execute(
                    f"SELECT id FROM tasks WHERE rowid IN ({marks}) AND account_id = ?",  # noqa: S608
                    (*rowids, db.account_id),
                )
            ]
    return found[:count]


async def _get(session: aiohttp.ClientSession, url: str, key: str) -> float:
    """One GET on the session's keep-alive connection; latency in ms; it must answer 200."""
    started = time.perf_counter()
    async with session.get(url, headers={"Authorization": f"Bearer {key}"}) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {url}: {response.status}")
    return (time.perf_counter() - started) * 1000


class _Undo(Exception):
    pass


async def _claim(store: SqliteStore, lease_ms: int, batch: int) -> tuple[float, int]:
    """The delivery worker's claim, undone; latency in ms, and how many it claimed."""
    try:
        # What SqliteStore.claim_due_deliveries runs, in a transaction that is then undone.
        async with store.db.transaction() as conn:
            started = time.perf_counter()
            rows = await store.queries(conn).claim_due_deliveries(system_clock(), lease_ms, batch)
            elapsed = (time.perf_counter() - started) * 1000
            raise _Undo
    except _Undo:
        pass
    return elapsed, len(rows)


async def _claim_through_store(store: Store, now_ms: int, lease_ms: int, batch: int
                               ) -> tuple[float, int]:  # fmt: skip
    """The store's own claim, committed (PostgreSQL: the claim is its ``FOR UPDATE SKIP
    LOCKED`` statement and its commit); ``now_ms`` moves a lease on per call, so each claim
    finds the earlier one's lease expired and the same due backlog."""
    started = time.perf_counter()
    rows = await store.claim_due_deliveries(now_ms, lease_ms, batch)
    return (time.perf_counter() - started) * 1000, len(rows)


async def run(ctx: Context) -> tuple[Outcome, float | None]:
    out = Outcome()
    print(f"[bench] scale: preparing {ctx.scale_big:,} and {ctx.scale_small:,} task databases",
          file=sys.stderr, flush=True)  # fmt: skip
    small = await scaledb.get(ctx.cache_dir, ctx.scale_small)
    big = await scaledb.get(ctx.cache_dir, ctx.scale_big)
    for server in ctx.servers:
        async with contextlib.AsyncExitStack() as stack:
            out.extend(await _run_on(ctx, stack, server, small, big))
    return out, None


async def _run_on(ctx: Context, stack: contextlib.AsyncExitStack, server: PgServer | None,
                  small: scaledb.ScaleDb, big: scaledb.ScaleDb) -> Outcome:  # fmt: skip
    out = Outcome()
    dbs = {"small": small, "big": big}
    stores: dict[str, BenchStore] = {}
    for which, db in dbs.items():
        if server is not None:
            started = time.monotonic()
            print(f"[bench] scale: copying {db.tasks:,} tasks into PostgreSQL", file=sys.stderr,
                  flush=True)  # fmt: skip
        stores[which] = await provision(stack, server, f"scale_{which}", db.path, db.secret_key,
                                        ctx.log_dir)  # fmt: skip
        if server is not None:
            out.notes.append(f"scale: {db.tasks:,}-task database copied into PostgreSQL in "
                             f"{time.monotonic() - started:.0f} s")  # fmt: skip
    backend = stores["small"].backend
    if server is not None:
        return await _measure(ctx, out, dbs, stores, backend)
    for db in (small, big):
        how = "cached" if db.cached else f"built in {db.build_seconds:.0f} s"
        rows = ", ".join(f"{t} {n:,}" for t, n in db.tables.items())
        out.notes.append(f"scale: {db.tasks:,}-task database ({how}): {rows}; "
                         f"{db.size_bytes / 1e9:.2f} GB")  # fmt: skip
    size = Metric(NAME, "database size per million tasks", "GB",
                  [big.size_bytes / 1e9 / (big.tasks / 1e6)])  # fmt: skip
    await _measure(ctx, out, dbs, stores, backend)
    out.metrics.append(size)
    return out


async def _measure(ctx: Context, out: Outcome, dbs: dict[str, scaledb.ScaleDb],
                   stores: dict[str, BenchStore], backend: str) -> Outcome:  # fmt: skip

    figures = {
        "GET /v1/tasks?status=…": "list",
        "GET /v1/tasks/{id}": "get",
        "delivery claim (SQL, batch 128)": "claim",
    }
    if backend != SQLITE:
        figures["delivery claim (SQL, batch 128)"] = "claim"  # the same row in the table
    p99 = {(kind, which): Metric(NAME, f"{label} p99, {which}", "ms", backend=backend)
           for label, kind in figures.items() for which in ("big", "small")}  # fmt: skip
    ratios = {kind: Metric(NAME, f"{label} p99 ratio big/small", "x", target=("<=", 1.5),
                           backend=backend)
              for label, kind in figures.items()}  # fmt: skip
    # No rate limit: one key asks as fast as it is answered, and the figure is the query's
    # latency at size, not how quickly a 429 comes back.
    env = {"TASKHOOK__WORKERS__IN_SERVE": "false", "TASKHOOK__API__RATE_LIMIT": "0"}
    ports = {"small": processes.free_port(), "big": processes.free_port()}
    pg = backend != SQLITE
    servers = {
        which: processes.serve(
            f"scale-{which}{'-pg' if pg else ''}",
            ctx.run_dir / f"scale-pg-{which}" if pg else db.data_dir,
            db.secret_key,  # the key its endpoint secrets were sealed under
            ports[which],
            ctx.log_dir,
            cpus=ctx.placement.service,
            **env,
            **stores[which].env(),
        )
        for which, db in dbs.items()
    }
    ids = {which: _task_ids(db, ctx.scale_requests, 6) for which, db in dbs.items()}
    settings_delivery = (60_000, 128)  # lease (ms) and batch_size, as in default.toml
    with servers["small"], servers["big"]:
        for which, proc in servers.items():
            await processes.wait_ready(proc, f"http://127.0.0.1:{ports[which]}/healthz")
        lists = [f"/v1/tasks?status={STATUSES[i % len(STATUSES)]}"
                 for i in range(ctx.scale_requests)]  # fmt: skip
        # Per size: one session (one keep-alive connection), and the URL of each request.
        urls = {
            (kind, which): [f"http://127.0.0.1:{ports[which]}{path}" for path in paths]
            for which in dbs
            for kind, paths in (("list", lists), ("get", [f"/v1/tasks/{i}" for i in ids[which]]))
        }
        sessions = {which: aiohttp.ClientSession() for which in dbs}
        try:
            for run in range(-1, ctx.runs):  # run -1 warms the page cache and the servers
                for kind in ("list", "get"):
                    got: dict[str, list[float]] = {"small": [], "big": []}
                    count = WARMUP if run < 0 else ctx.scale_requests
                    for i in range(count):  # alternate, so both see the same moment
                        for which, db in dbs.items():
                            url = urls[(kind, which)][i]
                            got[which].append(await _get(sessions[which], url, db.api_key))
                    if run >= 0:
                        for which in dbs:
                            p99[(kind, which)].values.append(percentile(got[which], 99))
        finally:
            for session in sessions.values():
                await session.close()
    claimed = {}
    if pg:
        opened: dict[str, Store] = {
            which: open_store(load_settings(processes.service_env(
                ctx.run_dir / f"scale-pg-{which}", db.secret_key, **stores[which].env())))
            for which, db in dbs.items()
        }  # fmt: skip
    else:
        opened = {
            which: SqliteStore(db.path, secrets=SecretBox.from_keys(db.secret_key))
            for which, db in dbs.items()
        }
    now = system_clock()
    try:
        for store in opened.values():
            await store.open()
        for run in range(-1, ctx.runs):
            got = {"small": [], "big": []}
            for _ in range(WARMUP if run < 0 else CLAIMS):
                now += settings_delivery[0] + 1
                for which, store in opened.items():
                    if pg:
                        elapsed, claimed[which] = await _claim_through_store(
                            store, now, *settings_delivery)  # fmt: skip
                    else:
                        assert isinstance(store, SqliteStore)
                        elapsed, claimed[which] = await _claim(store, *settings_delivery)
                    got[which].append(elapsed)
            if run >= 0:
                for which in dbs:
                    p99[("claim", which)].values.append(percentile(got[which], 99))
    finally:
        for store in opened.values():
            await store.close()
    tag = f" [{backend}]" if pg else ""
    out.check(NAME, "each claim found a full batch (big, small)" + tag, (128, 128),
              (claimed["big"], claimed["small"]))  # fmt: skip
    for kind, metric in ratios.items():
        bigs, smalls = p99[(kind, "big")], p99[(kind, "small")]
        metric.values = [b / s for b, s in zip(bigs.values, smalls.values, strict=True)]
        out.metrics += [metric, bigs, smalls]
    return out
