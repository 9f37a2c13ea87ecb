"""Every route with the database gone: a 503 ``store_unavailable`` with ``Retry-After`` (the
caller retries), never a 500 and never a hang; ``/healthz`` (liveness) stays 200; and the same
app serves again once the database is back, without a restart."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.conftest import Caller
from tests.cut_proxy import CutProxy
from tests.faults.conftest import HANG_BOUND_S
from tests.upstream.test_callback_rejections import Harness, success_body

pytestmark = pytest.mark.postgres_only


async def every_route(h: Harness, who: Caller) -> dict[str, tuple[str, str, bytes | None]]:
    """One request per route, on rows that exist (made while the database was there)."""
    task = await h.submitted_task(who)
    endpoint = (
        await h.client.post(
            "/v1/endpoints", json={"url": "http://127.0.0.1:9/hook"}, headers=who.headers
        )
    ).json()["id"]
    callback = await h.deliver(task["id"], success_body())
    assert callback.status_code == 200, callback.text
    cb = callback.json()["id"]
    event = (await h.client.get("/v1/events", headers=who.headers)).json()["data"][0]["id"]
    delivery = (await h.client.get(f"/v1/events/{event}/deliveries", headers=who.headers)).json()[
        "data"
    ]
    other = await h.submitted_task(who, provider_task_id="sim_other")
    callback_path = await h.path(other["id"])
    body = b'{"prompt": "a fox", "model": "nano-banana"}'
    routes: dict[str, tuple[str, str, bytes | None]] = {
        "readyz": ("GET", "/readyz", None),
        "metrics": ("GET", "/metrics", None),
        "submit": ("POST", "/v1/tasks", body),
        "list tasks": ("GET", "/v1/tasks", None),
        "get task": ("GET", f"/v1/tasks/{task['id']}", None),
        "timeline": ("GET", f"/v1/tasks/{task['id']}/timeline", None),
        "account": ("GET", "/v1/account", None),
        "ledger": ("GET", "/v1/account/ledger", None),
        "callbacks": ("GET", "/v1/callbacks", None),
        "callback replay": ("POST", f"/v1/callbacks/{cb}/replay", None),
        "endpoints": ("GET", "/v1/endpoints", None),
        "create endpoint": ("POST", "/v1/endpoints", b'{"url": "http://127.0.0.1:9/x"}'),
        "get endpoint": ("GET", f"/v1/endpoints/{endpoint}", None),
        "patch endpoint": ("PATCH", f"/v1/endpoints/{endpoint}", b'{"enabled": false}'),
        "rotate": ("POST", f"/v1/endpoints/{endpoint}/rotate-secret", None),
        "ping": ("POST", f"/v1/endpoints/{endpoint}/test", None),
        "endpoint deliveries": ("GET", f"/v1/endpoints/{endpoint}/deliveries", None),
        "recover": ("POST", f"/v1/endpoints/{endpoint}/recover", b"{}"),
        "events": ("GET", "/v1/events", None),
        "event": ("GET", f"/v1/events/{event}", None),
        "event deliveries": ("GET", f"/v1/events/{event}/deliveries", None),
        "event replay": ("POST", f"/v1/events/{event}/replay", b"{}"),
        "attempts": ("GET", f"/v1/deliveries/{delivery[0]['id'] if delivery else 'dl_x'}/attempts",
                     None),
        "decisions": ("GET", "/v1/moderation/decisions", None),
        "delete endpoint": ("DELETE", f"/v1/endpoints/{endpoint}", None),
        "provider callback": ("POST", callback_path, success_body("sim_other")),
    }  # fmt: skip
    return routes


async def call(
    h: Harness, who: Caller, method: str, path: str, body: bytes | None
) -> tuple[httpx.Response, float]:
    headers = dict(who.headers)
    if body is not None:
        headers["content-type"] = "application/json"
    if path.startswith("/callbacks/"):
        headers = h.sign(body or b"")
    started = time.monotonic()
    response = await h.client.request(method, path, content=body, headers=headers)
    return response, time.monotonic() - started


@pytest.mark.parametrize("fault", ["cut", "black_hole"])
async def test_every_route_answers_503_while_the_database_is_gone_and_recovers(
    h: Harness, caller: Caller, proxy: CutProxy, fault: str
) -> None:
    routes = await every_route(h, caller)
    await (proxy.cut() if fault == "cut" else proxy.black_hole())
    wrong: dict[str, str] = {}

    async def check(name: str, method: str, path: str, body: bytes | None) -> None:
        response, took = await call(h, caller, method, path, body)
        try:
            code = response.json().get("error", {}).get("code")
        except ValueError:
            code = None
        if (response.status_code, code) != (503, "store_unavailable"):
            wrong[name] = f"{response.status_code} {response.text[:120]}"
        elif not response.headers.get("retry-after", "").isdigit():
            wrong[name] = "no Retry-After"
        elif took > HANG_BOUND_S:
            wrong[name] = f"took {took:.1f}s"

    # all at once: a black-holed pool must bound every request, not just the first
    await asyncio.gather(*(check(name, *spec) for name, spec in routes.items()))
    health = await h.client.get("/healthz")
    assert health.status_code == 200
    assert wrong == {}

    await proxy.restore()
    back: dict[str, int] = {}
    for name in ("readyz", "get task", "list tasks", "account", "submit", "metrics"):
        response, _ = await call(h, caller, *routes[name])
        back[name] = response.status_code
    assert back == {
        "readyz": 200, "get task": 200, "list tasks": 200, "account": 200, "submit": 202,
        "metrics": 200,
    }  # fmt: skip
