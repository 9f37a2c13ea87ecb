"""``POST /callbacks/{provider}/{token}`` through the real app: every callback that must be turned
away (token, signature, body, size) and proof that it changed nothing — the task as the API shows
it, the balance, the events — then the signed success, failure, duplicate and stale callbacks for
contrast.

Tasks are made with ``POST /v1/tasks`` and marked submitted through the real ledger path
(``apply_update``), as the submitter would. Simulator callbacks are signed with the reference
``standardwebhooks`` package; their bodies have the shape the simulator's ``Job.data`` gives.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import math
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette

from service.assets.mirror import Mirror
from service.core.clock import system_clock
from service.core.ledger import Change, TaskStatus
from service.core.timeline import EntryKind
from service.core.tokens import CallbackTokens
from service.settings import Settings
from service.store.base import Store
from service.upstream import apply_update
from service.web.context import Services
from tests import image_server as images
from tests.backends import reader
from tests.conftest import Caller, MakeCaller

SIM_ID = "sim_abc"
TASK_BODY: dict[str, Any] = {
    "prompt": "a red fox in the snow",
    "model": "nano-banana",
    "aspect_ratio": "16:9",
    "resolution": "1k",
}
#: 16:9 at 1k: the long side is 1024, the short one 1024 * 9 / 16 = 576 (already a multiple of 8)
WIDTH, HEIGHT = 1024, 576
EVENTS_OF_TASK = "SELECT COUNT(*) FROM events WHERE task_id = ?"
DAY_MS = 86_400_000
MIB = 1024 * 1024


# --- callback bodies, as the simulator writes them ---------------------------------------------


def image_url(provider_task_id: str = SIM_ID, index: int = 0) -> str:
    """Where the provider says the image is: the test image host, serving a real PNG."""
    return images.shared().url(f"{provider_task_id}-{index}", width=WIDTH, height=HEIGHT)


def record(provider_task_id: str, state: str, **overrides: Any) -> dict[str, Any]:
    """The ``data`` object of a simulator callback (``Job.data``), with ``overrides`` on top."""
    success, failed = state == "success", state == "fail"
    done = success or failed
    data: dict[str, Any] = {
        "taskId": provider_task_id,
        "model": "nano-banana",
        "state": state,
        "param": json.dumps({"model": "nano-banana", "input": {"prompt": TASK_BODY["prompt"]}}),
        "resultJson": json.dumps({"resultUrls": [image_url(provider_task_id)]}) if success else "",
        "failCode": "500" if failed else "",
        "failMsg": "Simulated failure" if failed else "",
        "costTime": 300 if done else None,
        "createTime": 1_700_000_000_000,
        "completeTime": 1_700_000_000_300 if done else None,
        "progress": 100 if success else 0,
    }
    data.update(overrides)
    return data


def envelope(provider_task_id: str, state: str, **overrides: Any) -> dict[str, Any]:
    """``{code, msg, data}`` as the simulator sends it for ``state``."""
    code, msg = {"success": (200, "success"), "fail": (501, "Simulated failure")}.get(
        state, (200, "generating")
    )
    return {"code": code, "msg": msg, "data": record(provider_task_id, state, **overrides)}


def encode(body: object) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def success_body(provider_task_id: str = SIM_ID, **overrides: Any) -> bytes:
    return encode(envelope(provider_task_id, "success", **overrides))


def generating_body(provider_task_id: str = SIM_ID, progress: int = 50) -> bytes:
    return encode(envelope(provider_task_id, "generating", progress=progress))


def fail_body(provider_task_id: str = SIM_ID) -> bytes:
    return encode(envelope(provider_task_id, "fail"))


def raw_signature(secret: str, msg_id: str, stamp: int, body: bytes) -> str:
    """Standard Webhooks by hand, for bodies ``standardwebhooks`` cannot take (not UTF-8)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


# --- the harness -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """Everything a rejected callback must leave as it was."""

    task: dict[str, Any]
    balance: int
    events: int


@dataclass(frozen=True)
class Harness:
    app: Starlette
    client: httpx.AsyncClient
    store: Store

    @property
    def services(self) -> Services:
        return cast(Services, self.app.state.services)

    async def create_task(self, who: Caller, **extra: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/tasks", json={**TASK_BODY, **extra}, headers=who.headers
        )
        assert response.status_code == 202, response.text
        task: dict[str, Any] = response.json()
        return task

    async def mark_submitted(self, task_id: str, provider_task_id: str = SIM_ID) -> None:
        """The submitter's ledger path: queued → submitted with the provider's task id."""
        services = self.services
        async with services.store.transaction() as tx:
            task = await tx.get_task_by_id(task_id)
            assert task is not None
            await apply_update(
                tx,
                task,
                Change(TaskStatus.SUBMITTED, provider_task_id=provider_task_id),
                services.clock(),
                kind=EntryKind.STATE_CHANGE,
                source="submitter",
                link=services.upstream.link,
            )

    async def submitted_task(
        self, who: Caller, provider_task_id: str = SIM_ID, **extra: Any
    ) -> dict[str, Any]:
        task = await self.create_task(who, **extra)
        await self.mark_submitted(task["id"], provider_task_id)
        return await self.get_task(who, task["id"])

    async def settle(self) -> int:
        """Run the mirror loop's round as the worker would: held tasks' results are kept and
        the tasks succeed (or fail). Returns how many jobs it took."""
        return await Mirror(self.services.upstream, self.services.assets).mirror_due()

    async def get_task(self, who: Caller, task_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/tasks/{task_id}", headers=who.headers)
        assert response.status_code == 200, response.text
        task: dict[str, Any] = response.json()
        return task

    async def path(self, task_id: str, provider: str = "simulator") -> str:
        """The callback URL's path, minted the way the submitter mints it."""
        services = self.services
        task = await services.store.get_task_by_id(task_id)
        assert task is not None
        url = services.upstream.callback_url(provider, task)
        base = services.settings.service.public_base
        assert url.startswith(base + "/callbacks/")
        return url.removeprefix(base)

    async def token(self, task_id: str, provider: str = "simulator") -> str:
        return (await self.path(task_id, provider)).rsplit("/", 1)[1]

    def sign(
        self,
        body: bytes,
        *,
        msg_id: str | None = None,
        at: datetime | None = None,
        secret: str | None = None,
    ) -> dict[str, str]:
        """Standard Webhooks headers for ``body``, as the simulator sends them."""
        msg_id = msg_id or f"msg_{secrets.token_hex(16)}"
        at = at or datetime.now(tz=UTC)
        secret = secret or self.services.settings.simulator.secret.reveal()
        stamp = math.floor(at.timestamp())
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            signature = raw_signature(secret, msg_id, stamp, body)
        else:
            signature = str(Webhook(secret).sign(msg_id, at, text))
        return {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": signature,
        }

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.client.post(path, content=body, headers=headers)

    async def deliver(self, task_id: str, body: bytes) -> httpx.Response:
        """A correctly signed simulator callback to the task's own URL."""
        return await self.post(await self.path(task_id), body, self.sign(body))

    async def balance(self, who: Caller) -> int:
        response = await self.client.get("/v1/account", headers=who.headers)
        assert response.status_code == 200, response.text
        value = response.json()["balance_credits"]
        assert isinstance(value, int)
        return value

    async def count(self, sql: str, *args: object) -> int:
        async with reader(self.store).execute(sql, args) as cursor:
            row = await cursor.fetchone()
        assert row is not None
        return int(row[0])

    async def events(self, task_id: str) -> int:
        return await self.count(EVENTS_OF_TASK, task_id)

    async def snapshot(self, who: Caller, task_id: str) -> Snapshot:
        return Snapshot(
            await self.get_task(who, task_id), await self.balance(who), await self.events(task_id)
        )

    async def callbacks(self, who: Caller, task_id: str | None = None) -> list[dict[str, Any]]:
        params = {"task_id": task_id} if task_id is not None else {}
        response = await self.client.get("/v1/callbacks", params=params, headers=who.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert page["next_cursor"] is None
        data: list[dict[str, Any]] = page["data"]
        return data

    async def kept(self, task_id: str) -> list[tuple[str, str]]:
        """``(verdict, outcome)`` of the callbacks stored for a task, read from the table."""
        async with reader(self.store).execute(
            "SELECT verdict, outcome FROM callbacks WHERE task_id = ? ORDER BY id", (task_id,)
        ) as cursor:
            rows = await cursor.fetchall()
        return [(row["verdict"], row["outcome"]) for row in rows]

    async def refunds(self, who: Caller, task_id: str) -> list[dict[str, Any]]:
        response = await self.client.get(
            "/v1/account/ledger", params={"limit": "100"}, headers=who.headers
        )
        assert response.status_code == 200, response.text
        return [
            e for e in response.json()["data"] if e["kind"] == "refund" and e["task_id"] == task_id
        ]


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    """The contract's error shape: ``{"error": {"code", "message", "field"}}``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "field"}
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]


def assert_submitted_untouched(snapshot: Snapshot) -> None:
    task = snapshot.task
    assert task["status"] == "submitted"
    assert task["provider_task_id"] == SIM_ID
    assert task["sequence"] == 2
    assert task["results"] == []
    assert task["refunded_credits"] == 0
    assert snapshot.events == 2  # task.queued, task.submitted


# --- the token ---------------------------------------------------------------------------------


def _other_key_token(task_id: str) -> str:
    other = CallbackTokens(["another-secret-key-0123456789abcdefghijkl"], 604800, system_clock)
    return other.mint("simulator", task_id, system_clock())


FORGED: dict[str, Callable[[str], str]] = {
    "random": lambda _task_id: secrets.token_urlsafe(32),
    "three_parts": lambda _task_id: "InRhc2tfMDEifQ.ZXhhbXBsZQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
    "bare_task_id": lambda task_id: task_id,
    "signed_with_another_key": _other_key_token,
}


@pytest.mark.parametrize("forge", FORGED.values(), ids=FORGED.keys())
async def test_a_forged_token_is_refused_and_nothing_is_kept(
    h: Harness, caller: Caller, forge: Callable[[str], str]
) -> None:
    task = await h.submitted_task(caller)
    before = await h.snapshot(caller, task["id"])
    body = success_body()

    response = await h.post(f"/callbacks/simulator/{forge(task['id'])}", body, h.sign(body))

    assert_error(response, 401, "invalid_token")
    after = await h.snapshot(caller, task["id"])
    assert after == before
    assert_submitted_untouched(after)
    assert await h.kept(task["id"]) == []


def _flip(token: str, part: int) -> str:
    """``token`` with one character in the middle of one of its dot-separated parts changed."""
    parts = token.split(".")
    assert len(parts) == 3  # payload . timestamp . signature
    text = parts[part]
    at = len(text) // 2  # not the last character: its low bits may be base64 padding
    parts[part] = text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]
    altered = ".".join(parts)
    assert altered != token
    return altered


@pytest.mark.parametrize("part", [0, 1, 2], ids=["payload", "timestamp", "signature"])
async def test_an_altered_token_is_refused_and_nothing_is_kept(
    h: Harness, caller: Caller, part: int
) -> None:
    task = await h.submitted_task(caller)
    before = await h.snapshot(caller, task["id"])
    body = success_body()
    token = _flip(await h.token(task["id"]), part)

    response = await h.post(f"/callbacks/simulator/{token}", body, h.sign(body))

    assert_error(response, 401, "invalid_token")
    assert await h.snapshot(caller, task["id"]) == before
    assert await h.kept(task["id"]) == []


# (Base64 padding, "=", is not in this list: itsdangerous tolerates it, and the token it gives
# still names the same task under the same signature.)
@pytest.mark.parametrize("extra", ["x", "A", ".x", ".", "%00"])
async def test_a_token_with_characters_appended_is_refused(
    h: Harness, caller: Caller, extra: str
) -> None:
    task = await h.submitted_task(caller)
    before = await h.snapshot(caller, task["id"])
    body = success_body()

    response = await h.post(
        f"/callbacks/simulator/{await h.token(task['id'])}{extra}", body, h.sign(body)
    )

    assert_error(response, 401, "invalid_token")
    assert await h.snapshot(caller, task["id"]) == before


def _token_aged(settings: Settings, task_id: str, age_ms: int) -> str:
    """A token for ``task_id`` from our own minting, same keys, issued ``age_ms`` ago."""
    issued_at = system_clock() - age_ms
    tokens = CallbackTokens(
        [settings.secret_key.reveal()],
        settings.upstream.token_max_age_seconds,
        lambda: issued_at,
    )
    return tokens.mint("simulator", task_id, issued_at)


async def test_an_expired_token_is_refused_and_nothing_is_kept(
    h: Harness, caller: Caller, settings: Settings
) -> None:
    assert settings.upstream.token_max_age_seconds == 7 * 86400
    task = await h.submitted_task(caller)
    before = await h.snapshot(caller, task["id"])
    body = success_body()
    token = _token_aged(settings, task["id"], 8 * DAY_MS)

    response = await h.post(f"/callbacks/simulator/{token}", body, h.sign(body))

    assert_error(response, 401, "invalid_token")
    assert await h.snapshot(caller, task["id"]) == before
    assert await h.kept(task["id"]) == []


async def test_a_token_within_its_age_is_accepted(
    h: Harness, caller: Caller, settings: Settings
) -> None:
    task = await h.submitted_task(caller)
    body = success_body()
    token = _token_aged(settings, task["id"], 6 * DAY_MS)

    response = await h.post(f"/callbacks/simulator/{token}", body, h.sign(body))

    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "applied"
    await h.settle()
    assert (await h.get_task(caller, task["id"]))["status"] == "succeeded"


async def test_a_token_minted_for_another_provider_is_refused(h: Harness, caller: Caller) -> None:
    task = await h.submitted_task(caller)
    before = await h.snapshot(caller, task["id"])
    body = success_body()
    kie_token = await h.token(task["id"], provider="kie")
    assert kie_token != await h.token(task["id"])

    on_simulator = await h.post(f"/callbacks/simulator/{kie_token}", body, h.sign(body))
    # the right salt for the route, but the task is the simulator's
    on_kie = await h.post(f"/callbacks/kie/{kie_token}", body, h.sign(body))
    # a simulator token on kie's route
    sim_on_kie = await h.post(f"/callbacks/kie/{await h.token(task['id'])}", body, h.sign(body))

    for response in (on_simulator, on_kie, sim_on_kie):
        assert_error(response, 401, "invalid_token")
    assert await h.snapshot(caller, task["id"]) == before
    assert await h.kept(task["id"]) == []


async def test_another_tasks_token_cannot_carry_this_tasks_callback(
    h: Harness, caller: Caller
) -> None:
    a = await h.submitted_task(caller, provider_task_id="sim_aaa")
    b = await h.submitted_task(caller, provider_task_id="sim_bbb")
    before_a = await h.snapshot(caller, a["id"])
    before_b = await h.snapshot(caller, b["id"])
    body = success_body("sim_aaa")  # names A at the provider

    response = await h.post(await h.path(b["id"]), body, h.sign(body))  # B's token

    assert_error(response, 401, "invalid_token")
    assert await h.snapshot(caller, a["id"]) == before_a
    assert await h.snapshot(caller, b["id"]) == before_b
    assert await h.kept(a["id"]) == []
    assert all(outcome == "rejected" for _, outcome in await h.kept(b["id"]))


async def test_a_token_only_ever_reaches_its_own_task_across_accounts(
    h: Harness, make_caller: MakeCaller
) -> None:
    alice = await make_caller(name="alice")
    bob = await make_caller(name="bob")
    a = await h.submitted_task(alice, provider_task_id="sim_aaa")
    b = await h.submitted_task(bob, provider_task_id="sim_bbb")
    before_a = await h.snapshot(alice, a["id"])

    crossed = success_body("sim_aaa")
    refused = await h.post(await h.path(b["id"]), crossed, h.sign(crossed))
    own = success_body("sim_bbb")
    applied = await h.post(await h.path(b["id"]), own, h.sign(own))

    assert_error(refused, 401, "invalid_token")
    assert applied.status_code == 200, applied.text
    assert applied.json()["outcome"] == "applied"
    await h.settle()
    assert (await h.get_task(bob, b["id"]))["status"] == "succeeded"
    assert await h.snapshot(alice, a["id"]) == before_a
    assert await h.callbacks(alice) == []
    assert [cb["task_id"] for cb in await h.callbacks(bob)] == [b["id"]] * 2


@pytest.mark.parametrize("provider", ["nope", "Simulator", "simulator2"])
async def test_an_unknown_provider_is_404(h: Harness, caller: Caller, provider: str) -> None:
    task = await h.submitted_task(caller)
    before = await h.snapshot(caller, task["id"])
    body = success_body()

    response = await h.post(
        f"/callbacks/{provider}/{await h.token(task['id'])}", body, h.sign(body)
    )

    assert_error(response, 404, "not_found")
    assert await h.snapshot(caller, task["id"]) == before
    assert await h.kept(task["id"]) == []


async def test_a_callback_route_without_a_token_is_404(h: Harness, caller: Caller) -> None:
    body = success_body()

    for path in ("/callbacks/simulator", "/callbacks/simulator/", "/callbacks"):
        assert_error(await h.post(path, body, h.sign(body)), 404, "not_found")


# --- the signature -----------------------------------------------------------------------------

#: A bad signature case: given the harness and the body the provider meant, the headers and the
#: body that arrive.
Forgery = Callable[[Harness, bytes], tuple[dict[str, str], bytes]]


def _replace(name: str, value: str) -> Forgery:
    def forgery(h: Harness, body: bytes) -> tuple[dict[str, str], bytes]:
        return {**h.sign(body), name: value}, body

    return forgery


def _without(*names: str) -> Forgery:
    def forgery(h: Harness, body: bytes) -> tuple[dict[str, str], bytes]:
        headers = h.sign(body)
        for name in names:
            del headers[name]
        return headers, body

    return forgery


def _signed_at(delta: timedelta) -> Forgery:
    def forgery(h: Harness, body: bytes) -> tuple[dict[str, str], bytes]:
        return h.sign(body, at=datetime.now(tz=UTC) + delta), body

    return forgery


def _wrong_secret(h: Harness, body: bytes) -> tuple[dict[str, str], bytes]:
    return h.sign(body, secret=new_secret()), body


def _tampered_body(h: Harness, body: bytes) -> tuple[dict[str, str], bytes]:
    other = success_body(resultJson=json.dumps({"resultUrls": ["https://evil.example/x.png"]}))
    assert other != body
    return h.sign(body), other


def _tampered_timestamp(h: Harness, body: bytes) -> tuple[dict[str, str], bytes]:
    headers = h.sign(body)
    headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) + 1)
    return headers, body


def _tampered_id(h: Harness, body: bytes) -> tuple[dict[str, str], bytes]:
    headers = h.sign(body, msg_id="msg_original")
    headers["webhook-id"] = "msg_another"
    return headers, body


def _other_version(h: Harness, body: bytes) -> tuple[dict[str, str], bytes]:
    headers = h.sign(body)
    headers["webhook-signature"] = "v2," + headers["webhook-signature"].removeprefix("v1,")
    return headers, body


def _truncated(h: Harness, body: bytes) -> tuple[dict[str, str], bytes]:
    headers = h.sign(body)
    headers["webhook-signature"] = headers["webhook-signature"][:-4]
    return headers, body


def _milliseconds(h: Harness, body: bytes) -> tuple[dict[str, str], bytes]:
    now = datetime.now(tz=UTC)
    headers = h.sign(body, at=now)
    stamp_ms = math.floor(now.timestamp() * 1000)
    secret = h.services.settings.simulator.secret.reveal()
    headers["webhook-timestamp"] = str(stamp_ms)
    headers["webhook-signature"] = raw_signature(secret, headers["webhook-id"], stamp_ms, body)
    return headers, body


FORGERIES: dict[str, Forgery] = {
    "no_signature_headers": lambda _h, body: ({"content-type": "application/json"}, body),
    "no_webhook_signature": _without("webhook-signature"),
    "no_webhook_id": _without("webhook-id"),
    "no_webhook_timestamp": _without("webhook-timestamp"),
    "signature_garbage": _replace("webhook-signature", "garbage"),
    "signature_v1_empty": _replace("webhook-signature", "v1,"),
    "signature_v2": _replace("webhook-signature", "v2,xxx"),
    "signature_empty": _replace("webhook-signature", ""),
    "signature_good_value_as_v2": _other_version,
    "signature_truncated": _truncated,
    "wrong_secret": _wrong_secret,
    "tampered_body": _tampered_body,
    "tampered_timestamp": _tampered_timestamp,
    "tampered_webhook_id": _tampered_id,
    "stale_timestamp": _signed_at(timedelta(minutes=-6)),
    "future_timestamp": _signed_at(timedelta(minutes=6)),
    "timestamp_an_hour_old": _signed_at(timedelta(hours=-1)),
    "timestamp_in_milliseconds": _milliseconds,
    "timestamp_not_numeric": _replace("webhook-timestamp", "abc"),
    "timestamp_decimal": _replace("webhook-timestamp", "1700000000.5"),
    "timestamp_negative": _replace("webhook-timestamp", "-1"),
    "timestamp_iso": _replace("webhook-timestamp", "2024-01-01T00:00:00Z"),
    "timestamp_empty": _replace("webhook-timestamp", ""),
}


@pytest.mark.parametrize("forgery", FORGERIES.values(), ids=FORGERIES.keys())
async def test_a_bad_signature_is_401_kept_as_rejected_and_not_replayable(
    h: Harness, caller: Caller, forgery: Forgery
) -> None:
    task = await h.submitted_task(caller)
    before = await h.snapshot(caller, task["id"])
    headers, body = forgery(h, success_body())

    response = await h.post(await h.path(task["id"]), body, headers)

    assert_error(response, 401, "invalid_signature")
    after = await h.snapshot(caller, task["id"])
    assert after == before
    assert_submitted_untouched(after)
    kept = await h.callbacks(caller, task["id"])
    assert len(kept) == 1
    callback = kept[0]
    assert callback["id"].startswith("cb_")
    assert callback["task_id"] == task["id"]
    assert callback["provider"] == "simulator"
    assert callback["verdict"] == "rejected"
    assert callback["outcome"] == "rejected"
    assert callback["applied_at"] is None
    assert callback["body"] == json.loads(body)
    for name, value in headers.items():
        assert callback["headers"][name.lower()] == value

    replay = await h.client.post(f"/v1/callbacks/{callback['id']}/replay", headers=caller.headers)

    assert_error(replay, 422, "callback_rejected")
    assert await h.snapshot(caller, task["id"]) == before
    assert [cb["outcome"] for cb in await h.callbacks(caller, task["id"])] == ["rejected"]


def _two_signatures(h: Harness, body: bytes) -> tuple[dict[str, str], bytes]:
    headers = h.sign(body)
    wrong = h.sign(body, msg_id=headers["webhook-id"], secret=new_secret())
    headers["webhook-signature"] = f"{wrong['webhook-signature']} {headers['webhook-signature']}"
    return headers, body


GOOD_SIGNATURES: dict[str, Forgery] = {
    "now": lambda h, body: (h.sign(body), body),
    "four_minutes_old": _signed_at(timedelta(minutes=-4)),
    "four_minutes_ahead": _signed_at(timedelta(minutes=4)),
    "one_of_two_signatures_matches": _two_signatures,
}


@pytest.mark.parametrize("signing", GOOD_SIGNATURES.values(), ids=GOOD_SIGNATURES.keys())
async def test_a_good_signature_within_the_window_is_accepted(
    h: Harness, caller: Caller, signing: Forgery
) -> None:
    task = await h.submitted_task(caller)
    headers, body = signing(h, success_body())

    response = await h.post(await h.path(task["id"]), body, headers)

    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "applied"


# --- the body ----------------------------------------------------------------------------------


def _with_data(**fields: Any) -> bytes:
    return encode({"code": 200, "msg": "success", "data": fields})


def _success_with(**overrides: Any) -> bytes:
    return success_body(**overrides)


MALFORMED: dict[str, bytes] = {
    "not_utf8": b'{"code":200,"data":{"taskId":"sim_abc","state":"\xff\xfe"}}',
    "latin1": '{"data":{"taskId":"sim_abc","state":"fail","failMsg":"échec"}}'.encode("latin-1"),
    "utf16": json.dumps(envelope(SIM_ID, "success")).encode("utf-16"),
    "empty": b"",
    "not_json": b"not json at all",
    "truncated_json": success_body()[:-5],
    "deeply_nested": b"[" * 100_000,
    "json_array": b"[]",
    "array_of_envelopes": encode([envelope(SIM_ID, "success")]),
    "json_string": b'"success"',
    "json_number": b"200",
    "json_null": b"null",
    "no_data": encode({"code": 200, "msg": "success"}),
    "data_null": encode({"code": 200, "msg": "success", "data": None}),
    "data_string": encode({"code": 200, "msg": "success", "data": "sim_abc"}),
    "data_array": encode({"code": 200, "msg": "success", "data": [record(SIM_ID, "success")]}),
    "no_task_id": _with_data(state="success", resultJson=json.dumps({"resultUrls": [image_url()]})),
    "task_id_number": _with_data(taskId=42, state="generating", progress=5),
    "task_id_empty": _with_data(taskId="", state="generating", progress=5),
    "task_id_padded": _with_data(taskId=" sim_abc ", state="generating", progress=5),
    "no_state": _with_data(taskId=SIM_ID, progress=5),
    "state_number": _with_data(taskId=SIM_ID, state=3),
    "state_null": _with_data(taskId=SIM_ID, state=None),
    "state_unknown": _with_data(taskId=SIM_ID, state="exploded"),
    "state_upper_case": _with_data(taskId=SIM_ID, state="SUCCESS"),
    "result_json_missing": _with_data(taskId=SIM_ID, state="success"),
    "result_json_object": _success_with(resultJson={"resultUrls": [image_url()]}),
    "result_json_list": _success_with(resultJson=[image_url()]),
    "result_json_empty_string": _success_with(resultJson=""),
    "result_json_not_json": _success_with(resultJson="{resultUrls: nope"),
    "result_json_array": _success_with(resultJson="[]"),
    "result_urls_missing": _success_with(resultJson="{}"),
    # (an empty "resultUrls" is a success naming no image: no_result, tests/assets/test_mirror)
    "result_urls_string": _success_with(resultJson=json.dumps({"resultUrls": image_url()})),
    "result_url_ftp": _success_with(resultJson=json.dumps({"resultUrls": ["ftp://x/a.png"]})),
    "result_url_relative": _success_with(resultJson=json.dumps({"resultUrls": ["/a.png"]})),
    "result_url_script": _success_with(resultJson=json.dumps({"resultUrls": ["javascript:1"]})),
    "result_url_number": _success_with(resultJson=json.dumps({"resultUrls": [42]})),
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_body_with_a_good_signature_is_400_and_changes_nothing(
    h: Harness, caller: Caller, body: bytes
) -> None:
    task = await h.submitted_task(caller)
    before = await h.snapshot(caller, task["id"])

    response = await h.deliver(task["id"], body)

    assert_error(response, 400, "invalid_callback")
    after = await h.snapshot(caller, task["id"])
    assert after == before
    assert_submitted_untouched(after)
    assert await h.kept(task["id"]) == [("rejected", "rejected")]


async def test_a_body_over_one_mebibyte_is_413(h: Harness, caller: Caller) -> None:
    task = await h.submitted_task(caller)
    before = await h.snapshot(caller, task["id"])
    body = success_body()
    body = body + b" " * (MIB + 1 - len(body))
    assert len(body) == MIB + 1

    response = await h.deliver(task["id"], body)

    assert_error(response, 413, "payload_too_large")
    assert await h.snapshot(caller, task["id"]) == before


async def test_a_streamed_body_over_one_mebibyte_is_413(h: Harness, caller: Caller) -> None:
    task = await h.submitted_task(caller)
    before = await h.snapshot(caller, task["id"])
    chunk = b" " * (64 * 1024)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        yield success_body()
        for _ in range(MIB // len(chunk) + 1):
            yield chunk

    response = await h.client.post(await h.path(task["id"]), content=chunks(), headers=h.sign(b"x"))

    assert_error(response, 413, "payload_too_large")
    assert await h.snapshot(caller, task["id"]) == before


async def test_a_body_of_exactly_one_mebibyte_is_accepted(h: Harness, caller: Caller) -> None:
    task = await h.submitted_task(caller)
    body = success_body()
    body = body + b" " * (MIB - len(body))  # JSON allows trailing whitespace

    response = await h.deliver(task["id"], body)

    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "applied"


# --- for contrast: what a good callback does ---------------------------------------------------


async def test_a_signed_success_is_applied_with_its_results(h: Harness, caller: Caller) -> None:
    task = await h.submitted_task(caller)
    before = await h.snapshot(caller, task["id"])

    response = await h.deliver(task["id"], success_body())

    assert response.status_code == 200, response.text
    assert set(response.json()) == {"id", "outcome"}
    assert response.json()["id"].startswith("cb_")
    assert response.json()["outcome"] == "applied"
    held = await h.get_task(caller, task["id"])
    assert (held["status"], held["results"]) == ("running", [])  # until its image is kept
    assert await h.settle() == 1
    done = await h.get_task(caller, task["id"])
    assert done["status"] == "succeeded"
    assert done["progress"] == 100
    assert done["sequence"] == before.task["sequence"] + 2  # held, then succeeded
    [result] = done["results"]
    assert result["url"].startswith(h.services.settings.service.public_base + "/assets/ast_")
    kept = await h.client.get(result["url"])
    assert kept.status_code == 200
    assert kept.content == images.image_bytes(f"{SIM_ID}-0", "png", WIDTH, HEIGHT)
    assert result == {
        "url": result["url"], "source_url": image_url(), "content_type": "image/png",
        "width": WIDTH, "height": HEIGHT, "bytes": len(kept.content),
        "sha256": hashlib.sha256(kept.content).hexdigest(),
    }  # fmt: skip
    assert done["failure"] is None
    assert done["completed_at"] is not None
    assert done["refunded_credits"] == 0
    assert await h.balance(caller) == before.balance
    assert await h.events(task["id"]) == before.events + 2  # task.running (held), task.succeeded
    async with reader(h.store).execute(
        "SELECT type FROM events WHERE task_id = ? ORDER BY id DESC LIMIT 1", (task["id"],)
    ) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    assert row["type"] == "task.succeeded"


async def test_the_same_success_again_is_a_duplicate_with_no_second_effect(
    h: Harness, caller: Caller
) -> None:
    task = await h.submitted_task(caller)
    body = success_body()
    headers = h.sign(body)
    first = await h.post(await h.path(task["id"]), body, headers)
    await h.settle()
    after_first = await h.snapshot(caller, task["id"])

    again = await h.post(
        await h.path(task["id"]), body, headers
    )  # same webhook-id, same everything
    resigned = await h.deliver(task["id"], body)  # the provider's retry under a new webhook-id

    assert first.json()["outcome"] == "applied"
    for response in (again, resigned):
        assert response.status_code == 200, response.text
        assert response.json()["outcome"] == "duplicate"
    assert await h.snapshot(caller, task["id"]) == after_first
    assert after_first.task["status"] == "succeeded"


async def test_a_late_progress_callback_after_success_is_stale(h: Harness, caller: Caller) -> None:
    task = await h.submitted_task(caller)
    assert (await h.deliver(task["id"], success_body())).json()["outcome"] == "applied"
    await h.settle()
    after_success = await h.snapshot(caller, task["id"])

    late = await h.deliver(task["id"], generating_body(progress=50))
    failed_late = await h.deliver(task["id"], fail_body())

    assert late.status_code == failed_late.status_code == 200
    assert late.json()["outcome"] == "stale"
    assert failed_late.json()["outcome"] == "stale"
    assert await h.snapshot(caller, task["id"]) == after_success


async def test_progress_moves_forward_only(h: Harness, caller: Caller) -> None:
    task = await h.submitted_task(caller)

    forty = await h.deliver(task["id"], generating_body(progress=40))
    at_forty = await h.snapshot(caller, task["id"])
    thirty = await h.deliver(task["id"], generating_body(progress=30))
    forty_again = await h.deliver(task["id"], generating_body(progress=40))

    assert forty.json()["outcome"] == "applied"
    assert at_forty.task["status"] == "running"
    assert at_forty.task["progress"] == 40
    assert thirty.json()["outcome"] == "stale"
    assert forty_again.json()["outcome"] == "duplicate"
    assert await h.snapshot(caller, task["id"]) == at_forty


async def test_a_signed_failure_fails_the_task_and_refunds_it_once(
    h: Harness, caller: Caller
) -> None:
    start = await h.balance(caller)
    task = await h.submitted_task(caller)
    cost = task["cost_credits"]
    assert cost > 0
    assert await h.balance(caller) == start - cost
    body = fail_body()
    headers = h.sign(body)

    first = await h.post(await h.path(task["id"]), body, headers)

    assert first.status_code == 200, first.text
    assert first.json()["outcome"] == "applied"
    failed = await h.snapshot(caller, task["id"])
    assert failed.task["status"] == "failed"
    assert failed.task["results"] == []
    assert failed.task["failure"]["code"] == "provider_failed"
    assert "Simulated failure" in failed.task["failure"]["message"]
    assert failed.task["refunded_credits"] == cost
    assert failed.balance == start
    refunds = await h.refunds(caller, task["id"])
    assert len(refunds) == 1
    assert refunds[0]["delta"] == cost

    again = await h.post(await h.path(task["id"]), body, headers)
    success_after = await h.deliver(task["id"], success_body())

    assert again.json()["outcome"] == "duplicate"
    assert success_after.json()["outcome"] == "stale"
    assert await h.snapshot(caller, task["id"]) == failed
    assert len(await h.refunds(caller, task["id"])) == 1


@pytest.mark.parametrize("body", [success_body(), fail_body()], ids=["success", "fail"])
async def test_the_same_completion_arriving_at_once_applies_once(
    h: Harness, caller: Caller, body: bytes
) -> None:
    start = await h.balance(caller)
    task = await h.submitted_task(caller)
    path, headers = await h.path(task["id"]), h.sign(body)

    responses = await asyncio.gather(*(h.post(path, body, headers) for _ in range(6)))

    assert [r.status_code for r in responses] == [200] * 6
    outcomes = sorted(r.json()["outcome"] for r in responses)
    assert outcomes == ["applied"] + ["duplicate"] * 5
    assert await h.settle() == (body == success_body())  # one mirror job, for a success
    after = await h.snapshot(caller, task["id"])
    # queued, submitted, then the failure; or running (held) and succeeded
    steps = 3 if after.task["status"] == "failed" else 4
    assert after.task["sequence"] == steps
    assert after.events == steps
    refunds = await h.refunds(caller, task["id"])
    if after.task["status"] == "failed":
        assert len(refunds) == 1
        assert after.balance == start
    else:
        assert after.task["status"] == "succeeded"
        assert refunds == []
        assert after.balance == start - task["cost_credits"]


async def test_a_signed_failure_with_a_lone_surrogate_in_its_message_is_not_a_500(
    h: Harness, caller: Caller
) -> None:
    task = await h.submitted_task(caller)
    body = fail_body().replace(b'"Simulated failure"', b'"bad \\ud800 thing"')
    assert b"\\ud800" in body

    response = await h.deliver(task["id"], body)

    assert response.status_code in (200, 400), response.text
    after = await h.get_task(caller, task["id"])
    if response.status_code == 200:
        assert after["status"] == "failed"
        assert after["refunded_credits"] == task["cost_credits"]
    else:
        assert after["status"] == "submitted"
