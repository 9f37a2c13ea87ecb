"""Mirroring before success, through the real app: a provider's success holds the task until
the mirror loop has downloaded and kept every result from a real image host on loopback —
and every way that can fail ends in a failed, refunded-once task, never a lost or half-kept
one. On both backends."""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.core.pagination import PageRequest
from service.settings import Settings, load_settings
from service.store.base import EventFilter
from tests.conftest import EXTERNAL_PROVIDERS, Caller, settings_env
from tests.image_server import ImageServer, image_bytes
from tests.ops.conftest import scrape, value
from tests.upstream.test_callback_rejections import Harness, fail_body, success_body


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        settings_env(
            tmp_path, **EXTERNAL_PROVIDERS,
            TASKHOOK__ASSETS__DOWNLOAD_ATTEMPTS="3", TASKHOOK__ASSETS__BACKOFF_BASE_MS="1",
            TASKHOOK__ASSETS__BACKOFF_MAX_MS="2", TASKHOOK__ASSETS__MAX_BYTES="300000",
            TASKHOOK__ASSETS__LEASE_SECONDS="1",
        )
    )  # fmt: skip


def succeeded_with(*urls: str) -> bytes:
    return success_body(resultJson=json.dumps({"resultUrls": list(urls)}))


async def held(h: Harness, caller: Caller, *urls: str) -> dict[str, Any]:
    """A submitted task whose provider has just reported success with ``urls``."""
    task = await h.submitted_task(caller)
    answered = await h.deliver(task["id"], succeeded_with(*urls))
    assert answered.status_code == 200
    assert answered.json()["outcome"] == "applied"
    return task


async def settle_all(h: Harness, rounds: int = 20) -> None:
    """Run mirror rounds until no job is due (retries come due a few ms later)."""
    for _ in range(rounds):
        if not await h.settle() and not await h.count("SELECT COUNT(*) FROM mirrors"):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("mirror jobs left over")


async def assert_failed_once(
    h: Harness, caller: Caller, task_id: str, code: str, balance_before: int
) -> dict[str, Any]:
    done = await h.get_task(caller, task_id)
    assert done["status"] == "failed", done
    assert done["failure"]["code"] == code
    assert done["results"] == []
    assert done["refunded_credits"] == done["cost_credits"] > 0
    assert len(await h.refunds(caller, task_id)) == 1
    assert await h.balance(caller) == balance_before + done["cost_credits"]
    assert await h.count("SELECT COUNT(*) FROM mirrors WHERE task_id = ?", task_id) == 0
    assert await h.count("SELECT COUNT(*) FROM assets WHERE task_id = ?", task_id) == 0
    return done


async def test_a_success_holds_the_task_until_every_result_is_kept(
    h: Harness, caller: Caller, image_server: ImageServer
) -> None:
    # the provider says nothing of sizes: what is recorded is read from the files
    urls = [image_server.url("two-a", width=320, height=200),
            image_server.url("two-b", "webp", width=64, height=64)]  # fmt: skip
    task = await held(h, caller, *urls)

    waiting = await h.get_task(caller, task["id"])
    assert (waiting["status"], waiting["progress"], waiting["results"]) == ("running", 99, [])
    timeline = await h.client.get(f"/v1/tasks/{task['id']}/timeline", headers=caller.headers)
    assert "keeping 2 results" in timeline.json()["data"][-1]["detail"]
    assert value(await scrape(h.client), "taskhook_mirror_queue") == 1

    assert await h.settle() == 1
    assert value(await scrape(h.client), "taskhook_mirror_queue") == 0
    done = await h.get_task(caller, task["id"])
    assert (done["status"], done["progress"], done["failure"]) == ("succeeded", 100, None)
    first, second = done["results"]
    assert (first["content_type"], first["width"], first["height"]) == ("image/png", 320, 200)
    assert (second["content_type"], second["width"], second["height"]) == ("image/webp", 64, 64)
    for result, original in zip(done["results"], urls, strict=True):
        assert result["source_url"] == original
        kept = await h.client.get(result["url"])
        assert kept.status_code == 200
        assert kept.headers["content-type"] == result["content_type"]
        async with httpx.AsyncClient() as direct:
            assert kept.content == (await direct.get(original)).content  # byte for byte
        assert result["sha256"] == hashlib.sha256(kept.content).hexdigest()
        assert result["bytes"] == len(kept.content)
    # the event carries taskhook's links, not the provider's
    [event] = await h.store.list_events(
        caller.account_id, EventFilter(type="task.succeeded"), PageRequest(limit=10)
    )
    data = json.loads(event.payload)["data"]
    assert [r["source_url"] for r in data["results"]] == urls
    assert all("/assets/ast_" in r["url"] for r in data["results"])


async def test_a_success_naming_no_image_fails_no_result_refunded_once(
    h: Harness, caller: Caller
) -> None:
    start = await h.balance(caller)
    task = await h.submitted_task(caller)
    answered = await h.deliver(task["id"], succeeded_with())
    assert answered.json()["outcome"] == "applied"
    await assert_failed_once(h, caller, task["id"], "no_result", start - task["cost_credits"])
    assert await h.settle() == 0  # nothing was queued to mirror


@pytest.mark.parametrize(
    "path",
    ["/status/404/gone.png", "/status/410/gone.png", "/status/403/signed.png",
     "/html/page.png", "/huge/big.png"],
    ids=["404", "410", "403", "not-an-image", "too-large"],
)  # fmt: skip
async def test_a_result_that_will_never_come_fails_result_unavailable(
    h: Harness, caller: Caller, image_server: ImageServer, path: str
) -> None:
    start = await h.balance(caller)
    task = await held(h, caller, image_server.url("fine"), image_server.base + path)
    assert await h.settle() == 1  # one round: no retry for what will not change
    await assert_failed_once(
        h, caller, task["id"], "result_unavailable", start - task["cost_credits"]
    )
    assert await h.count("SELECT COUNT(*) FROM mirrors") == 0
    # the refund happened once however often the job is looked at again
    assert await h.settle() == 0


async def test_transient_errors_are_retried_with_backoff_then_kept(
    h: Harness, caller: Caller, image_server: ImageServer
) -> None:
    name = f"twice-busy-{secrets.token_hex(4)}"  # counted per name; the lanes share the host
    task = await held(h, caller, image_server.base + f"/flaky/2/{name}.png")
    await settle_all(h)
    done = await h.get_task(caller, task["id"])
    assert done["status"] == "succeeded"
    assert image_server.hits[name] == 3
    kept = await h.client.get(done["results"][0]["url"])
    assert kept.content == image_bytes(name)
    timeline = await h.client.get(f"/v1/tasks/{task['id']}/timeline", headers=caller.headers)
    retries = [e for e in timeline.json()["data"] if "download attempt" in e["detail"]]
    assert len(retries) == 2


async def test_retries_exhausted_fail_the_task_once(
    h: Harness, caller: Caller, image_server: ImageServer
) -> None:
    start = await h.balance(caller)
    task = await held(h, caller, image_server.base + "/status/500/always-busy.png")
    await settle_all(h)
    done = await assert_failed_once(
        h, caller, task["id"], "result_unavailable", start - task["cost_credits"]
    )
    assert "after 3 attempts" in done["failure"]["message"]


async def test_a_retry_after_is_honoured(
    h: Harness, caller: Caller, image_server: ImageServer
) -> None:
    task = await held(h, caller, image_server.base + "/status/503/asks-to-wait.png")
    before = h.services.clock()
    assert await h.settle() == 1
    due = await h.count("SELECT next_attempt_at FROM mirrors WHERE task_id = ?", task["id"])
    assert due >= before + 1000  # Retry-After: 1, above the 1-2 ms backoff
    assert (await h.get_task(caller, task["id"]))["status"] == "running"


async def test_a_duplicate_success_while_held_queues_one_job(
    h: Harness, caller: Caller, image_server: ImageServer
) -> None:
    url = image_server.url("dupe")
    task = await held(h, caller, url)
    again = await h.deliver(task["id"], succeeded_with(url))
    failed_late = await h.deliver(task["id"], fail_body())
    assert again.json()["outcome"] == "duplicate"
    assert failed_late.json()["outcome"] == "stale"  # the provider already said success
    assert await h.count("SELECT COUNT(*) FROM mirrors") == 1
    assert await h.settle() == 1
    done = await h.get_task(caller, task["id"])
    assert (done["status"], done["refunded_credits"]) == ("succeeded", 0)
    assert await h.count("SELECT COUNT(*) FROM assets WHERE task_id = ?", task["id"]) == 1


async def test_a_redirect_is_followed_and_an_unsafe_target_refused(
    h: Harness, caller: Caller, image_server: ImageServer
) -> None:
    followed = await held(h, caller, image_server.base + "/redirect/moved.png")
    assert await h.settle() == 1
    assert (await h.get_task(caller, followed["id"]))["status"] == "succeeded"

    start = await h.balance(caller)
    other = await h.create_task(caller)
    await h.mark_submitted(other["id"], "sim_meta")
    body = success_body("sim_meta", resultJson=json.dumps(
        {"resultUrls": ["http://169.254.169.254/latest/meta-data.png"]}))  # fmt: skip
    assert (await h.deliver(other["id"], body)).json()["outcome"] == "applied"
    assert await h.settle() == 1
    done = await assert_failed_once(
        h, caller, other["id"], "result_unavailable", start - other["cost_credits"]
    )
    assert "refused target" in done["failure"]["message"]


async def test_a_killed_mirror_is_redone_and_its_half_file_never_served(
    h: Harness, caller: Caller, image_server: ImageServer
) -> None:
    task = await held(h, caller, image_server.url("after-a-crash"))
    services = h.services
    # a worker claims the job and dies mid-download: its lease and a staged part file remain
    [claimed] = await h.store.claim_due_mirrors(services.clock(), 1000, 10)
    part = services.assets.store.staging / "deadbeef.part"
    part.write_bytes(image_bytes("after-a-crash")[:100])
    assert await h.settle() == 0  # leased: another worker leaves it
    await asyncio.sleep(1.05)
    assert await h.settle() == 1  # the lease ran out: the whole job is done again
    done = await h.get_task(caller, task["id"])
    assert done["status"] == "succeeded"
    kept = await h.client.get(done["results"][0]["url"])
    assert kept.content == image_bytes("after-a-crash")
    # the dead worker's claim is void: it can neither settle nor release the job now
    async with h.store.transaction() as tx:
        assert not await tx.finish_mirror(claimed)
    assert part.exists()  # never named by any asset; swept when stale (see test_asset_store)


async def test_identical_bytes_are_kept_once(
    h: Harness, caller: Caller, image_server: ImageServer
) -> None:
    url = image_server.url("same-picture")
    first = await held(h, caller, url)
    await h.settle()
    other = await h.create_task(caller)
    await h.mark_submitted(other["id"], "sim_two")
    body = success_body("sim_two", resultJson=json.dumps({"resultUrls": [url]}))
    await h.deliver(other["id"], body)
    await h.settle()
    a = (await h.get_task(caller, first["id"]))["results"][0]
    b = (await h.get_task(caller, other["id"]))["results"][0]
    assert a["sha256"] == b["sha256"]
    assert a["url"] != b["url"]
    root = h.services.assets.store.root  # type: ignore[attr-defined]
    blobs = [p for p in root.rglob("*") if p.is_file() and ".staging" not in p.parts]
    assert [p.name for p in blobs] == [a["sha256"]]


async def test_the_image_outlives_the_provider_link(
    h: Harness, caller: Caller, image_server: ImageServer
) -> None:
    name = f"short-lived-{secrets.token_hex(4)}"  # once per name, and the lanes share the host
    url = image_server.base + f"/once/{name}.png"
    task = await held(h, caller, url)
    assert await h.settle() == 1
    [result] = (await h.get_task(caller, task["id"]))["results"]
    async with httpx.AsyncClient() as direct:
        assert (await direct.get(url)).status_code == 404  # the provider's link is gone
    kept = await h.client.get(result["url"])
    assert kept.status_code == 200
    assert kept.content == image_bytes(name)
