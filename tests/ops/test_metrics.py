"""``GET /metrics`` over ASGI: the database gauges after real tasks, callbacks and deliveries,
and the attempt counters and latency histogram the real delivery worker fed, parsed back with
``prometheus_client``'s own parser."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest
from starlette.applications import Starlette

from service.app import create_app
from service.metrics import Metrics
from service.settings import Settings
from service.store.sqlite import SqliteStore
from tests.conftest import Caller
from tests.ops.conftest import MovableClock, Samples, Subscriber, parse, scrape, value
from tests.upstream.test_callback_rejections import Harness, new_secret, success_body

LATENCY = "taskhook_delivery_latency_seconds"
ATTEMPTS = "taskhook_delivery_attempts_total"


def gauges(samples: Samples, name: str) -> dict[str, float]:
    """``{label value: value}`` of a one-label family."""
    return {labels[0][1]: v for (n, labels), v in samples.items() if n == name and labels}


async def test_an_empty_service_reports_every_series_at_zero(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")  # no API key
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = parse(response.text)
    assert gauges(samples, "taskhook_tasks") == dict.fromkeys(
        ["queued", "submitted", "running", "succeeded", "failed"], 0
    )
    assert gauges(samples, "taskhook_callbacks") == dict.fromkeys(
        ["applied", "duplicate", "stale", "rejected", "pending"], 0
    )
    assert gauges(samples, "taskhook_deliveries") == dict.fromkeys(
        ["pending", "delivered", "failed"], 0
    )
    assert gauges(samples, ATTEMPTS) == dict.fromkeys(["delivered", "failed", "gone"], 0)
    for name in (
        "taskhook_delivery_queue_due",
        "taskhook_delivery_queue_claimed",
        "taskhook_delivery_oldest_pending_age_seconds",
        "taskhook_delivery_queue_lag_seconds",
        f"{LATENCY}_count",
    ):
        assert value(samples, name) == 0, name
    assert value(samples, f"{LATENCY}_bucket", le="0.005") == 0
    assert value(samples, f"{LATENCY}_bucket", le="30.0") == 0


async def test_counts_queue_and_latency_follow_real_traffic(
    h: Harness,
    caller: Caller,
    subscriber: Subscriber,
    store: SqliteStore,
    clock: MovableClock,
) -> None:
    subscriber.receiver.script["/busy"] = [(503, {"Retry-After": "3600"})]
    await subscriber.endpoint(caller, "/ok")
    await subscriber.endpoint(caller, "/busy")
    # Task A: queued → submitted → succeeded by a signed callback, then the same again
    # (duplicate), then one with a bad signature (rejected, 401).
    task = await h.submitted_task(caller)
    assert (await h.deliver(task["id"], success_body())).status_code == 200
    assert (await h.deliver(task["id"], success_body())).status_code == 200
    assert await h.settle() == 1  # the mirror keeps its image: succeeded
    forged = h.sign(success_body(), secret=new_secret())
    assert (await h.post(await h.path(task["id"]), success_body(), forged)).status_code == 401
    await h.create_task(caller)  # task B stays queued
    # 5 events (A: queued, submitted, running, succeeded; B: queued) x 2 endpoints
    assert await subscriber.worker.deliver_due() == 10

    clock.advance(90)
    await h.create_task(caller)  # task C: 2 new deliveries, due now
    [claimed] = await store.claim_due_deliveries(clock(), 60_000, 1)
    clock.advance(5)

    samples = await scrape(h.client)
    assert gauges(samples, "taskhook_tasks") == {
        "queued": 2, "submitted": 0, "running": 0, "succeeded": 1, "failed": 0,
    }  # fmt: skip
    assert gauges(samples, "taskhook_callbacks") == {
        "applied": 1, "duplicate": 1, "stale": 0, "rejected": 1, "pending": 0,
    }  # fmt: skip
    assert gauges(samples, "taskhook_deliveries") == {"pending": 7, "delivered": 5, "failed": 0}
    assert value(samples, "taskhook_delivery_queue_due") == 1
    assert value(samples, "taskhook_delivery_queue_claimed") == 1
    assert value(samples, "taskhook_delivery_oldest_pending_age_seconds") == 95
    assert value(samples, "taskhook_delivery_queue_lag_seconds") == 5
    assert gauges(samples, ATTEMPTS) == {"delivered": 5, "failed": 5, "gone": 0}
    assert value(samples, f"{LATENCY}_count") == 10
    assert value(samples, f"{LATENCY}_bucket", le="+Inf") == 10
    assert 0 < value(samples, f"{LATENCY}_sum") < 10 * 5  # loopback: well under 5 s each
    assert value(samples, f"{LATENCY}_bucket", le="5.0") == 10
    assert claimed.endpoint.url.endswith(("/ok", "/busy"))


async def test_a_410_counts_as_gone(
    h: Harness, caller: Caller, subscriber: Subscriber, client: httpx.AsyncClient
) -> None:
    subscriber.receiver.script["/gone"] = [410]
    await subscriber.endpoint(caller, "/gone")
    await h.create_task(caller)
    assert await subscriber.worker.deliver_due() == 1
    samples = await scrape(client)
    assert gauges(samples, ATTEMPTS) == {"delivered": 0, "failed": 0, "gone": 1}
    assert gauges(samples, "taskhook_deliveries") == {"pending": 0, "delivered": 0, "failed": 1}
    assert value(samples, f"{LATENCY}_count") == 1


async def test_an_attempt_that_sent_nothing_is_counted_but_not_timed(
    h: Harness, caller: Caller, subscriber: Subscriber, store: SqliteStore
) -> None:
    endpoint_id = await subscriber.endpoint(caller, "/off")
    await h.create_task(caller)
    # Disabled after its delivery was queued (and without failing that delivery): the worker
    # records a failed attempt and sends nothing.
    endpoint = await store.get_endpoint(caller.account_id, endpoint_id)
    assert endpoint is not None
    async with store.transaction() as tx:
        assert await tx.update_endpoint(replace(endpoint, enabled=False))
    assert await subscriber.worker.deliver_due() == 1
    assert subscriber.receiver.at("/off") == []
    samples = await scrape(h.client)
    assert gauges(samples, ATTEMPTS)["failed"] == 1
    assert value(samples, f"{LATENCY}_count") == 0


def test_each_app_has_its_own_registry() -> None:
    one, two = Metrics(), Metrics()
    one.observe_latency(12)
    assert one.registry is not two.registry
    assert one.registry.get_sample_value(f"{LATENCY}_count") == 1
    assert two.registry.get_sample_value(f"{LATENCY}_count") == 0
    assert one.registry.get_sample_value(f"{LATENCY}_sum") == pytest.approx(0.012)


async def test_two_apps_in_one_process_do_not_collide(
    app: Starlette, settings: Settings, client: httpx.AsyncClient
) -> None:
    second = create_app(settings, run_workers=False)  # a second registry, same metric names
    async with second.router.lifespan_context(second):
        second_metrics: Metrics = second.state.metrics
        second_metrics.observe_latency(5)
        assert second_metrics is not app.state.metrics
        samples = await scrape(client)
    assert value(samples, f"{LATENCY}_count") == 0


async def test_attempts_count_the_same_from_a_process_that_sent_none(
    h: Harness, caller: Caller, subscriber: Subscriber, settings: Settings
) -> None:
    """Another process on the database (a `web` with no workers) reports the attempts this
    one's worker recorded: they are read from the database; only the latency histogram is
    this process's own."""
    subscriber.receiver.script["/busy"] = [503]
    await subscriber.endpoint(caller, "/ok")
    await subscriber.endpoint(caller, "/busy")
    await h.create_task(caller)
    assert await subscriber.worker.deliver_due() == 2
    other = create_app(settings, run_workers=False)
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            elsewhere = await scrape(c)
    here = await scrape(h.client)
    expected = {"delivered": 1, "failed": 1, "gone": 0}
    assert gauges(here, ATTEMPTS) == gauges(elsewhere, ATTEMPTS) == expected
    assert value(here, f"{LATENCY}_count") == 2
    assert value(elsewhere, f"{LATENCY}_count") == 0
