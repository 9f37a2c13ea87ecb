"""Everything at once over loopback: a task submitted through the API runs through the
simulator, and every event it causes reaches a subscriber's endpoint, signed."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import httpx
from standardwebhooks.webhooks import Webhook

from service.app import create_app
from service.core.clock import system_clock
from service.settings import load_settings
from service.usecases import create_account, create_api_key
from tests.conftest import settings_env
from tests.delivery.receiver import Receiver
from tests.servers import bind_loopback, serve_app


async def test_task_events_reach_the_subscriber_signed_and_in_order(tmp_path: Path) -> None:
    receiver = Receiver()
    sock = bind_loopback()
    env = settings_env(
        tmp_path,
        PORT=str(sock.getsockname()[1]),
        TASKHOOK__SIMULATOR__LATENCY_MS="150",
        TASKHOOK__WORKERS__IDLE_POLL_MS="50",
    )
    app = create_app(load_settings(env))
    async with serve_app(receiver.app()) as hooks, serve_app(app, sock=sock, lifespan="on") as base:
        store = app.state.services.store
        account = await create_account(store, system_clock, "sub", 100)
        _, key = await create_api_key(store, system_clock, account.id)
        auth = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=base, headers=auth, timeout=10) as http:
            created = await http.post("/v1/endpoints", json={"url": hooks + "/all"})
            assert created.status_code == 201, created.text
            secret = created.json()["secret"]
            filtered = await http.post(
                "/v1/endpoints",
                json={"url": hooks + "/done", "event_types": ["task.succeeded"]},
            )
            assert filtered.status_code == 201
            task = (
                await http.post("/v1/tasks", json={"prompt": "a kite", "model": "nano-banana"})
            ).json()
            for _ in range(200):
                if any(b"task.succeeded" in r.body for r in receiver.at("/all")):
                    break
                await asyncio.sleep(0.05)
            # the event names taskhook's own link; the bytes are the simulator's, unchanged
            done = json.loads(receiver.at("/done")[0].body)["data"]
            [result] = done["results"]
            assert result["url"].startswith(base + "/assets/ast_")
            kept = await http.get(result["url"], headers={"Authorization": ""})
            original = await http.get(result["source_url"])
            assert kept.status_code == 200
            assert kept.content == original.content
            assert hashlib.sha256(kept.content).hexdigest() == result["sha256"]
            assert (result["width"], result["height"], result["bytes"]) == (
                1024, 1024, len(kept.content),
            )  # fmt: skip
    got = receiver.at("/all")
    events = [Webhook(secret).verify(r.body, r.headers) for r in got]
    assert [e["type"] for e in events] == [
        "task.queued", "task.submitted", "task.running", "task.succeeded",
    ]  # fmt: skip
    # strictly increasing: the hold while the results are kept is a step without an event
    sequences = [e["data"]["sequence"] for e in events]
    assert sequences == sorted(set(sequences))
    assert sequences[0] == 1
    assert all(e["data"]["id"] == task["id"] for e in events)
    assert len({r.headers["webhook-id"] for r in got}) == 4
    [done] = receiver.at("/done")
    assert json.loads(done.body)["type"] == "task.succeeded"
