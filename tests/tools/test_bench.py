"""The benchmark's cheapest parts, run for real: the ids and timestamps it writes, a small scale
database read back through the service's store, a seeded callback applied by the real app, the
load generator against a real uvicorn server, the durable-write baseline, the receiver, and the
report. No timings are
asserted: these check that the bench measures what it says it does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sqlite3
from pathlib import Path

import aiohttp
import httpx

from service.app import create_app
from service.core.clock import system_clock, to_rfc3339
from service.core.ids import is_id, make_id
from service.core.ledger import TaskStatus
from service.core.pagination import PageRequest
from service.settings import load_settings
from service.store.base import TaskFilter
from service.store.sqlite import SqliteStore
from tests.conftest import SECRET
from tests.factories import SECRET_BOX
from tests.servers import serve_app
from tools.bench import bare, durable, processes, scaledb, seed, templates
from tools.bench.callbacks import Callbacks
from tools.bench.ids import ALPHABET, Ids
from tools.bench.load import Request, closed_loop, open_loop
from tools.bench.receiver import Receiver, bind, serve_in_process
from tools.bench.report import missed, table
from tools.bench.results import Metric, Outcome, percentile


def test_ids_and_timestamps_are_the_services_own() -> None:
    ids = Ids(3)
    rng = random.Random(3)  # noqa: S311
    for ms in (0, 1, 999, 1_700_000_000_123, 2**48 - 1, *(rng.randrange(2**44) for _ in range(50))):
        made = ids("dlv", ms)
        assert is_id(made, "dlv")
        entropy = 0
        for char in made[-16:]:
            entropy = entropy * 32 + ALPHABET.index(char)
        assert made == make_id("dlv", ms, entropy.to_bytes(10, "big"))
    for ms in (
        0,
        1,
        999,
        86_399_999,
        1_700_000_000_123,
        *(rng.randrange(2**42) for _ in range(50)),
    ):
        assert ids.rfc3339(ms) == to_rfc3339(ms)


def test_the_seeded_price_is_the_configured_one(tmp_path: Path) -> None:
    settings = load_settings(processes.service_env(tmp_path, processes.new_secret_key()))
    assert settings.pricing.price(templates.MODEL, templates.TASK_TYPE, "1k", 1) == templates.COST


async def test_a_scale_database_has_its_shape_and_the_store_reads_it(tmp_path: Path) -> None:
    count, now = 1200, system_clock()
    path = tmp_path / "taskhook.db"
    specs = [scaledb._endpoints(n) for n in range(scaledb.ACCOUNTS)]
    accounts, counts = await seed.build(
        path, specs, scaledb.plan(count, now), lambda: now, secret_key=SECRET
    )
    tables = seed.table_counts(path)
    assert tables["tasks"] == counts.tasks == count
    assert tables["deliveries"] == counts.deliveries == scaledb.DELIVERIES_PER_TASK * count
    assert tables["events"] == counts.events
    assert tables["attempts"] == counts.attempts == counts.deliveries - counts.pending_due
    assert tables["accounts"] == scaledb.ACCOUNTS

    store = SqliteStore(path, secrets=SECRET_BOX)
    assert await store.open() == []  # the service's migrations, all applied already
    try:
        account = accounts[0].id
        page = await store.list_tasks(account, TaskFilter(status="failed"), PageRequest(limit=5))
        assert len(page) == 6
        assert all(t.state.status is TaskStatus.FAILED for t in page)
        failed = page[0]
        assert failed.refunded_credits == failed.cost_credits == templates.COST
        assert await store.get_task(account, failed.id) == failed
        finished = count - scaledb.IN_FLIGHT
        mine = range(0, count, scaledb.ACCOUNTS)
        charged = sum(1 for i in mine) - sum(1 for i in mine if i < finished and i % 20 == 0)
        assert await store.balance(account) == 10**12 - templates.COST * charged
        claimed = await store.claim_due_deliveries(system_clock(), 60_000, 10_000)
        assert len(claimed) == counts.pending_due > 0
        payload = json.loads(claimed[0].payload)
        assert payload["type"] == claimed[0].event_type
        assert payload["data"]["id"].startswith("task_")
    finally:
        await store.close()


async def test_a_seeded_callback_is_verified_and_applied_by_the_app(tmp_path: Path) -> None:
    env = processes.service_env(tmp_path, processes.new_secret_key(), TASKHOOK_LOG_LEVEL="error")
    settings = load_settings(env)
    now = system_clock()
    plan = seed.Plan(
        count=3, start_ms=now - 60_000, spacing_ms=1.0, history=False,
        status_of=lambda _i: TaskStatus.RUNNING, next_check_ms=now + 3_600_000,
    )  # fmt: skip
    await seed.build(settings.storage.database_path, [[("http://127.0.0.1:9/h", None)]], plan,
                     system_clock, secret_key=settings.secret_key.reveal())  # fmt: skip
    request = Callbacks(settings, "http://testserver").completion(plan.pool[1])
    app = create_app(settings, run_workers=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            answer = await client.post(request.path, headers=request.headers, content=request.body)
        assert answer.status_code == 200, answer.text
        assert answer.json()["outcome"] == "applied"
        store = app.state.services.store
        task = await store.get_task_by_id(plan.pool[1].id)
        assert task is not None
        # held for the mirror loop (not running here): its result is kept before it succeeds
        assert (task.state.status, task.state.progress) == (TaskStatus.RUNNING, 99)
        async with store.transaction() as tx:
            assert await tx.mirror_pending(task.id)


async def test_the_load_generator_against_a_real_bare_server() -> None:
    body = b'{"code":200}'
    async with serve_app(bare.create_app()) as base:
        closed = await closed_loop(
            base, [Request("/callbacks/simulator/t", {}, body)] * 100_000,
            concurrency=4, duration_s=1.0,
        )  # fmt: skip
        assert closed.ok > 0
        assert closed.failed == 0
        assert set(closed.statuses) == {200}
        assert len(closed.latencies_ms) == closed.ok
        assert closed.elapsed_s > 0
        requests = [Request("/callbacks/simulator/t", {}, body, tag=str(i)) for i in range(20)]
        opened = await open_loop(base, requests, rate=200)
        assert opened.ok == 20
        assert sorted(opened.sent_at) == sorted(r.tag for r in requests)
        due = [opened.sent_at[str(i)] for i in range(20)]
        assert due == sorted(due)  # sent on its fixed schedule, in order


async def test_the_durable_baseline_answers_only_once_its_row_is_committed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "durable.db"
    async with (
        serve_app(durable.create_app(path), lifespan="on") as base,
        httpx.AsyncClient(base_url=base) as client,
    ):

        async def post(i: int) -> int:
            answer = await client.post("/callbacks/simulator/t", content=b"row %d" % i)
            assert answer.status_code == 200
            # another connection sees the row as soon as the answer is in
            with contextlib.closing(sqlite3.connect(path)) as conn:
                found = conn.execute(
                    "SELECT count(*) FROM writes WHERE body = ?", (b"row %d" % i,)
                ).fetchone()[0]
            return int(found)

        assert await asyncio.gather(*(post(i) for i in range(40))) == [1] * 40
        stats = (await client.get("/stats")).json()
    assert stats["rows"] == 40
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT count(*) FROM writes").fetchone()[0] == 40


async def test_the_durable_baseline_commits_rows_queued_together_as_one_group(
    tmp_path: Path,
) -> None:
    writer = durable.GroupWriter(tmp_path / "durable.db")
    try:
        await asyncio.gather(*(writer.write(b"x") for _ in range(50)))
        await writer.write(b"y")
    finally:
        writer.close()
    assert (writer.rows, writer.commits) == (51, 2)


async def test_a_cancelled_write_leaves_the_rest_of_its_group_answered(tmp_path: Path) -> None:
    writer = durable.GroupWriter(tmp_path / "durable.db")
    try:
        first = asyncio.ensure_future(writer.write(b"gone"))
        rest = [asyncio.ensure_future(writer.write(b"kept")) for _ in range(3)]
        await asyncio.sleep(0)  # all four queued, the flush under way
        first.cancel()
        await asyncio.wait_for(asyncio.gather(*rest), 5)
    finally:
        writer.close()
    assert (writer.rows, writer.commits) == (4, 1)  # its row was already on its way


async def test_the_receiver_counts_and_records() -> None:
    receiver = Receiver(record=True)
    sock = bind()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server, serving = await serve_in_process(receiver, sock)
    try:
        async with aiohttp.ClientSession() as session:
            for n in range(3):
                async with session.post(f"{url}/hooks", data=f"{n}".encode()) as response:
                    assert response.status == 204
            async with session.get(f"{url}/_stats") as response:
                assert (await response.json())["count"] == 3
    finally:
        server.should_exit = True
        await serving
        sock.close()
    assert [a.body for a in receiver.arrivals] == [b"0", b"1", b"2"]


def test_the_report_shows_medians_spreads_and_misses() -> None:
    outcome = Outcome()
    outcome.metrics.append(Metric("1 x", "fast", "1/s", [10.0, 30.0, 20.0], target=(">=", 15)))
    outcome.metrics.append(Metric("1 x", "slow", "ms", [9.0, 11.0, 10.0], target=("<=", 5)))
    outcome.check("1 x", "counts agree", 3, 2)
    text = table(outcome)
    assert "20.0 1/s" in text
    assert "10.0-30.0" in text
    assert "pass" in text
    assert "FAIL" in text
    assert "FAILED [1 x] counts agree: expected 3, got 2" in text
    assert missed(outcome) == ["1 x: slow", "1 x: counts agree"]
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0


def test_a_count_known_within_bounds_passes_inside_them_only() -> None:
    """wrk stops with requests unanswered: rows for them may exist, so ingest's count is
    checked between the 2xx answers and those plus the requests cut off."""
    outcome = Outcome()
    assert outcome.check_within("1 x", "stored", 100, 164, 100)
    assert outcome.check_within("1 x", "stored", 100, 164, 164)
    assert not outcome.check_within("1 x", "lost one", 100, 164, 99)
    assert not outcome.check_within("1 x", "too many", 100, 164, 165)
    assert "FAILED [1 x] lost one: expected 100 to 164, got 99" in table(outcome)
    assert missed(outcome) == ["1 x: lost one", "1 x: too many"]
