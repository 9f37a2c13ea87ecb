"""The delivery worker against a real receiver on loopback: real SQLite, the real aiohttp
sender, signatures checked with the ``standardwebhooks`` package. The clock is ours to move,
so retries scheduled minutes ahead are reached at once."""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from service.core.clock import system_clock
from service.core.endpoints import Endpoint, generate_secret
from service.core.events import Event, envelope
from service.core.ids import new_id
from service.delivery.sender import Sender
from service.delivery.ssrf import TargetPolicy
from service.delivery.worker import DeliveryWorker
from service.outbox import record_event
from service.settings import load_settings
from service.store.base import Account, Store
from tests import backends
from tests.backends import make_store, reader, sqlite_store, writing
from tests.conftest import settings_env
from tests.delivery.receiver import Receiver
from tests.factories import SECRET_BOX, make_endpoint
from tests.servers import bind_loopback, serve_app

# Real time, moved forward by the tests: the standardwebhooks package checks timestamps
# against the wall clock.
T0 = system_clock()


@dataclass
class Bench:
    store: Store
    worker: DeliveryWorker
    receiver: Receiver
    base: str
    now: list[int]
    account_id: str

    async def endpoint(self, path: str, **changes: object) -> Endpoint:
        url = str(changes.pop("url", self.base + path))
        endpoint = make_endpoint(self.account_id, url, now=self.now[0], **changes)
        async with self.store.transaction() as tx:
            await tx.insert_endpoint(endpoint)
        return endpoint

    async def event(self, event_type: str = "task.succeeded", data: object = None) -> Event:
        now = self.now[0]
        payload = envelope(event_type, {"n": data}, now)
        event = Event(new_id("evt", now), self.account_id, event_type, None, payload, now)
        async with self.store.transaction() as tx:
            await record_event(tx, event, now)
        return event

    async def held(self, *paths: str, events: int) -> None:
        """Endpoints at ``paths`` whose answers wait for ``receiver.release``, and ``events``
        ``task.succeeded`` events: a delivery to each of them per event."""
        for path in paths:
            self.receiver.script[path] = ["hang"]
            await self.endpoint(path)
        for n in range(events):
            await self.event("task.succeeded", n)

    async def rows(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        async with reader(self.store).execute(sql, args) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]

    async def round(self, advance_s: float = 0) -> int:
        self.now[0] += int(advance_s * 1000)
        return await self.worker.deliver_due()


@pytest.fixture
async def bench(tmp_path: Path) -> AsyncIterator[Bench]:
    settings = load_settings(
        settings_env(tmp_path, TASKHOOK__DELIVERY__REQUEST_TIMEOUT_SECONDS="1")
    )
    store = make_store(tmp_path / "d.db", secrets=SECRET_BOX)
    await store.open()
    now = [T0]
    account = Account(new_id("acct", T0), "subscriber", T0)
    async with store.transaction() as tx:
        await tx.insert_account(account)
    receiver = Receiver()
    policy = TargetPolicy.from_settings(settings.delivery.allowed_networks)
    sender = Sender(settings.delivery, policy)
    worker = DeliveryWorker(store, sender, settings.delivery, lambda: now[0], rand=lambda: 0.5)
    sock = bind_loopback()
    async with serve_app(receiver.app(), sock=sock) as base:
        yield Bench(store, worker, receiver, base, now, account.id)
        receiver.release.set()
    await sender.close()
    await store.close()


async def test_a_delivery_arrives_signed_and_verifies_with_standardwebhooks(bench: Bench) -> None:
    endpoint = await bench.endpoint("/hook")
    event = await bench.event("task.succeeded", 1)
    assert await bench.round() == 1
    [got] = bench.receiver.at("/hook")
    assert got.headers["webhook-id"] == event.id
    assert got.body == event.payload.encode()
    assert Webhook(endpoint.secret).verify(got.body, got.headers) == json.loads(event.payload)
    assert await bench.rows("SELECT status, attempts FROM deliveries") == [("delivered", 1)]
    assert await bench.rows("SELECT number, status_code, error FROM attempts") == [(1, 200, None)]


async def test_during_rotation_both_secrets_verify(bench: Bench) -> None:
    old = generate_secret(secrets.token_bytes(32))
    endpoint = await bench.endpoint(
        "/rot", previous_secret=old, previous_secret_until=T0 + 86_400_000
    )
    await bench.event()
    await bench.round()
    [got] = bench.receiver.at("/rot")
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    for secret in (endpoint.secret, old):
        Webhook(secret).verify(got.body, got.headers)


async def test_500_then_200_is_delivered_on_the_second_attempt(bench: Bench) -> None:
    bench.receiver.script["/flaky"] = [500, 200]
    await bench.endpoint("/flaky")
    event = await bench.event()
    await bench.round()
    assert await bench.rows("SELECT status, attempts, last_status FROM deliveries") == [
        ("pending", 1, 500)
    ]
    assert await bench.round() == 0  # not due before the schedule says (dev: 1 s)
    await bench.round(advance_s=1.2)
    assert await bench.rows("SELECT status, attempts FROM deliveries") == [("delivered", 2)]
    assert [r.headers["webhook-id"] for r in bench.receiver.at("/flaky")] == [event.id] * 2
    assert await bench.rows("SELECT number, status_code FROM attempts ORDER BY number") == [
        (1, 500), (2, 200),
    ]  # fmt: skip


async def test_a_timeout_and_a_refused_connection_are_retried(bench: Bench) -> None:
    bench.receiver.script["/slow"] = ["sleep:3", 200]
    await bench.endpoint("/slow")
    closed = bind_loopback()  # bound, never listening: connections are refused
    refused_url = f"http://127.0.0.1:{closed.getsockname()[1]}/x"
    await bench.endpoint("", url=refused_url)
    await bench.event()
    await bench.round()
    by_url = "SELECT e.url, d.{} FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id"
    errors = dict(await bench.rows(by_url.format("last_error")))
    assert errors[bench.base + "/slow"] == "timed out"
    assert "Connect" in str(errors[refused_url])
    assert {r[0] for r in await bench.rows("SELECT status FROM deliveries")} == {"pending"}
    await bench.round(advance_s=1.2)
    statuses = dict(await bench.rows(by_url.format("status")))
    assert statuses[bench.base + "/slow"] == "delivered"
    assert statuses[refused_url] == "pending"
    closed.close()


async def test_a_redirect_is_a_failure_and_its_target_is_never_hit(bench: Bench) -> None:
    bench.receiver.script["/moved"] = [(302, {"Location": bench.base + "/target"})]
    await bench.endpoint("/moved")
    await bench.event()
    await bench.round()
    assert await bench.rows("SELECT status, last_status FROM deliveries") == [("pending", 302)]
    assert bench.receiver.at("/target") == []


async def test_410_disables_the_endpoint_and_tells_the_others(bench: Bench) -> None:
    bench.receiver.script["/gone"] = [410]
    gone = await bench.endpoint("/gone")
    await bench.endpoint("/other")
    await bench.event()
    await bench.round()
    [(enabled, reason)] = await bench.rows(
        "SELECT enabled, disabled_reason FROM endpoints WHERE id = ?", gone.id
    )
    assert enabled == 0
    assert "410" in str(reason)
    await bench.round()
    notices = [json.loads(r.body) for r in bench.receiver.at("/other")]
    assert [n["type"] for n in notices] == ["task.succeeded", "endpoint.disabled"]
    assert notices[1]["data"]["endpoint_id"] == gone.id
    await bench.event()
    await bench.round()
    assert len(bench.receiver.at("/gone")) == 1  # a disabled endpoint receives nothing more


async def test_retry_after_is_honoured(bench: Bench) -> None:
    bench.receiver.script["/busy"] = [(429, {"Retry-After": "120"}), 200]
    await bench.endpoint("/busy")
    await bench.event()
    await bench.round()
    [(next_at,)] = await bench.rows("SELECT next_attempt_at FROM deliveries")
    assert isinstance(next_at, int)
    assert next_at >= T0 + 120_000
    await bench.round(advance_s=60)
    assert len(bench.receiver.at("/busy")) == 1
    await bench.round(advance_s=61)
    assert len(bench.receiver.at("/busy")) == 2


async def test_an_exhausted_delivery_fails_and_keeps_every_attempt(bench: Bench) -> None:
    bench.receiver.script["/down"] = [503]
    await bench.endpoint("/down")
    await bench.event()
    for _ in range(6):
        await bench.round(advance_s=5)
    assert await bench.rows("SELECT status, attempts FROM deliveries") == [("failed", 4)]
    assert len(await bench.rows("SELECT id FROM attempts")) == 4  # dev schedule: 0, 1, 2, 4 s


async def test_an_endpoint_failing_past_the_threshold_is_disabled(bench: Bench) -> None:
    five_days_ago = T0 - 5 * 86_400_000
    bench.receiver.script["/sick"] = [500]
    sick = await bench.endpoint("/sick", failing_since=five_days_ago)
    await bench.event()
    await bench.round()
    [(enabled, reason)] = await bench.rows(
        "SELECT enabled, disabled_reason FROM endpoints WHERE id = ?", sick.id
    )
    assert enabled == 0
    assert "Failing continuously" in str(reason)
    assert await bench.rows("SELECT status FROM deliveries") == [("failed",)]


async def test_a_success_clears_the_failing_run(bench: Bench) -> None:
    bench.receiver.script["/wobbly"] = [500, 200]
    wobbly = await bench.endpoint("/wobbly")
    await bench.event()
    await bench.round()
    assert await bench.rows("SELECT failing_since FROM endpoints WHERE id = ?", wobbly.id) == [
        (T0,)
    ]
    await bench.round(advance_s=1.2)
    assert await bench.rows("SELECT failing_since FROM endpoints WHERE id = ?", wobbly.id) == [
        (None,)
    ]


async def test_a_slow_send_does_not_hold_back_the_next_batch(bench: Bench) -> None:
    """Claims overlap with sending: with batches of 4, one endpoint that hangs holds one
    connection, not the round — the eleven others are delivered while it hangs."""
    bench.receiver.script["/hang"] = ["hang"]
    await bench.endpoint("/hang", event_types=("task.failed",))
    await bench.endpoint("/fast", event_types=("task.succeeded",))
    await bench.event("task.failed")  # claimed first: the oldest
    for n in range(11):
        await bench.event("task.succeeded", n)
    small = replace(bench.worker.settings, batch_size=4)
    worker = replace(bench.worker, settings=small)
    round_ = asyncio.create_task(worker.deliver_due())
    for _ in range(200):
        if len(bench.receiver.at("/fast")) == 11:
            break
        await asyncio.sleep(0.025)
    assert len(bench.receiver.at("/fast")) == 11
    assert not round_.done()  # the hanging send is still out
    bench.receiver.release.set()
    assert await asyncio.wait_for(round_, 5) == 12
    assert await bench.rows("SELECT status, COUNT(*) FROM deliveries GROUP BY status") == [
        ("delivered", 12)
    ]


async def test_a_round_woken_mid_send_claims_what_was_just_written(bench: Bench) -> None:
    """News of a delivery committed while the round's last send hangs is acted on at once;
    without the news, the round ends only when the hanging send does, and the new delivery
    waits for the next round."""
    bench.receiver.script["/hang"] = ["hang"]
    await bench.endpoint("/hang", event_types=("task.failed",))
    await bench.endpoint("/fast", event_types=("task.succeeded",))
    await bench.event("task.failed")
    woken = asyncio.Event()
    round_ = asyncio.create_task(bench.worker.deliver_due(woken))
    await _all_received(bench, 1)  # the hanging send is out
    await bench.event("task.succeeded", "unannounced")
    await asyncio.sleep(0.2)
    assert bench.receiver.at("/fast") == []  # not claimed: nobody said it was there
    await bench.event("task.succeeded", "announced")
    woken.set()
    await _all_received(bench, 3)
    assert len(bench.receiver.at("/fast")) == 2
    assert not round_.done()  # the hanging send is still out
    assert not woken.is_set()  # the news was taken
    bench.receiver.release.set()
    assert await asyncio.wait_for(round_, 5) == 3
    assert await bench.rows("SELECT status, COUNT(*) FROM deliveries GROUP BY status") == [
        ("delivered", 3)
    ]


async def test_a_woken_round_with_nothing_due_leaves_the_news_for_the_next(bench: Bench) -> None:
    """Nothing claimed, nothing in flight: the round ends at once and does not take the news
    (its loop sees the event still set and goes round again)."""
    woken = asyncio.Event()
    woken.set()
    assert await bench.worker.deliver_due(woken) == 0
    assert woken.is_set()


async def test_the_per_endpoint_limit_is_per_endpoint_not_per_host(bench: Bench) -> None:
    """Two endpoints on one host:port: each gets its own share of connections (aiohttp's
    per-host limit would have them share one endpoint's)."""
    await bench.held("/a", "/b", events=6)
    limits = replace(bench.worker.settings, per_endpoint_concurrency=3, concurrency=64)
    sender = Sender(limits, TargetPolicy.from_settings(limits.allowed_networks))
    worker = replace(bench.worker, settings=limits, sender=sender)
    round_ = asyncio.create_task(worker.deliver_due())
    try:
        await _all_received(bench, 6)
        await asyncio.sleep(0.1)  # room for a seventh, if the limits were wrong
        # six events to each endpoint: three in flight at each, six at once on the one host
        assert (len(bench.receiver.at("/a")), len(bench.receiver.at("/b"))) == (3, 3)
        bench.receiver.release.set()
        assert await asyncio.wait_for(round_, 5) == 12
    finally:
        await sender.close()


async def _all_received(bench: Bench, count: int) -> None:
    for _ in range(200):
        if len(bench.receiver.received) >= count:
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"received {len(bench.receiver.received)} of {count}")


@pytest.mark.sqlite_only  # SQLite's writer and its write lock
async def test_attempts_that_finish_together_are_recorded_together(bench: Bench) -> None:
    """Sixteen answers released at once are written in a few transactions, not sixteen."""
    await bench.held("/a", "/b", events=8)
    recording: list[set[str]] = []  # per transaction: attempts inserted

    def trace(sql: str) -> None:
        if sql in ("BEGIN IMMEDIATE", "SAVEPOINT tx"):  # a group's first, a later member
            recording.append(set())
        elif sql.startswith("INSERT INTO attempts"):
            # a set: a statement is traced again as each trigger subprogram starts (0007's
            # attempt count)
            recording[-1].add(sql)

    round_ = asyncio.create_task(bench.worker.deliver_due())
    await _all_received(bench, 16)
    sqlite_store(bench.store).db.writer.set_trace_callback(trace)
    try:
        bench.receiver.release.set()
        assert await asyncio.wait_for(round_, 5) == 16
    finally:
        sqlite_store(bench.store).db.writer.set_trace_callback(None)
    batches = [len(n) for n in recording if n]
    assert sum(batches) == 16
    assert len(batches) <= 4, batches
    assert await bench.rows("SELECT status, COUNT(*) FROM deliveries GROUP BY status") == [
        ("delivered", 16)
    ]


async def test_a_lost_claim_in_a_batch_writes_nothing_and_keeps_the_others(bench: Bench) -> None:
    await bench.held("/a", events=4)
    round_ = asyncio.create_task(bench.worker.deliver_due())
    await _all_received(bench, 4)
    [(stolen,)] = await bench.rows("SELECT id FROM deliveries ORDER BY id LIMIT 1")
    async with writing(bench.store) as conn:  # its lease ran out and another took it
        await conn.execute("UPDATE deliveries SET claim_token = 'another' WHERE id = ?", (stolen,))
    bench.receiver.release.set()
    await asyncio.wait_for(round_, 5)
    rows = await bench.rows("SELECT id, status, attempts, claim_token FROM deliveries ORDER BY id")
    assert rows[0] == (stolen, "pending", 0, "another")
    assert [row[1:] for row in rows[1:]] == [("delivered", 1, None)] * 3
    assert await bench.rows("SELECT COUNT(*) FROM attempts WHERE delivery_id = ?", stolen) == [(0,)]
    assert await bench.rows("SELECT COUNT(*) FROM attempts") == [(3,)]


async def test_a_row_that_cannot_be_written_does_not_hold_back_its_batch(bench: Bench) -> None:
    """The batch is undone as a whole, then each is written alone: three are recorded, and the
    fourth stays pending under its lease, to be sent again when the lease runs out."""
    await bench.held("/a", events=4)
    [(poisoned,)] = await bench.rows("SELECT id FROM deliveries ORDER BY id LIMIT 1")
    async with writing(bench.store) as conn:
        if backends.CURRENT.is_postgres:
            await conn.execute(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                f" IF NEW.delivery_id = '{poisoned}' THEN RAISE EXCEPTION 'refused'; END IF;"
                " RETURN NEW; END $$",
                (),
            )
            await conn.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON attempts FOR EACH ROW"
                " EXECUTE FUNCTION refuse()",
                (),
            )
        else:
            await conn.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON attempts WHEN NEW.delivery_id = "
                f"'{poisoned}' BEGIN SELECT RAISE(ABORT, 'refused'); END",
                (),
            )
    round_ = asyncio.create_task(bench.worker.deliver_due())
    await _all_received(bench, 4)
    bench.receiver.release.set()
    await asyncio.wait_for(round_, 5)
    rows = await bench.rows(
        "SELECT id, status, claim_token IS NOT NULL FROM deliveries ORDER BY id"
    )
    assert rows[0] == (poisoned, "pending", 1)
    assert [row[1:] for row in rows[1:]] == [("delivered", 0)] * 3
    assert await bench.rows("SELECT COUNT(*) FROM attempts") == [(3,)]


@pytest.mark.sqlite_only  # SQLite's writer and its write lock
async def test_an_attempt_waiting_to_be_written_does_not_hold_its_endpoints_slot(
    bench: Bench,
) -> None:
    """One request in flight per endpoint: while the first attempt's outcome waits for the
    write lock (another process holds it), the endpoint's next deliveries still go out."""
    bench.receiver.script["/one"] = ["hang", 200]
    await bench.endpoint("/one")
    for n in range(3):
        await bench.event("task.succeeded", n)
    limits = replace(bench.worker.settings, per_endpoint_concurrency=1)
    round_ = asyncio.create_task(replace(bench.worker, settings=limits).deliver_due())
    await _all_received(bench, 1)  # claimed (committed) and the first request is out
    other = sqlite3.connect(sqlite_store(bench.store).db.path, isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        bench.receiver.release.set()  # the first answer comes back; its write must wait
        await _all_received(bench, 3)
        assert await bench.rows("SELECT COUNT(*) FROM attempts") == [(0,)]
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert await asyncio.wait_for(round_, 5) == 3
    assert await bench.rows("SELECT status, COUNT(*) FROM deliveries GROUP BY status") == [
        ("delivered", 3)
    ]


@pytest.mark.usefixtures("json_logs")
async def test_at_info_only_attempts_that_did_not_deliver_are_logged(
    bench: Bench, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every attempt is in the attempts table; the log at info shows the ones to look at."""
    bench.receiver.script["/bad"] = [500]
    await bench.endpoint("/ok")
    await bench.endpoint("/bad")
    await bench.event()
    assert await bench.round() == 2
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    attempts = [line for line in lines if line["event"] == "delivery.attempt"]
    assert [(a["status_code"], a["outcome"], a["level"]) for a in attempts] == [
        (500, "pending", "info")
    ]
    assert await bench.rows("SELECT COUNT(*) FROM attempts") == [(2,)]


async def test_a_cookie_one_endpoint_sets_is_never_sent_to_another(bench: Bench) -> None:
    """Endpoints of different accounts may share a host: a ``Set-Cookie`` from one must not
    ride along on the next delivery to any of them (Svix and Stripe send none). By name:
    aiohttp's default jar keeps no cookies from an IP address."""
    named = bench.base.replace("127.0.0.1", "localhost")
    bench.receiver.script["/sets"] = [(200, {"set-cookie": "session=theirs; Path=/"})]
    await bench.endpoint("/sets", url=named + "/sets")
    await bench.event()
    await bench.round()
    await bench.endpoint("/other", url=named + "/other")
    await bench.event()
    await bench.round()
    assert len(bench.receiver.received) == 3
    assert [r.headers.get("cookie") for r in bench.receiver.received] == [None, None, None]
