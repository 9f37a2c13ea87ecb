"""Garbage at every public route, all through the run: bad and missing credentials, malformed,
oversized and mistyped bodies, invalid values, other accounts' ids, unknown routes and methods.

The promise is "bad input never crashes or corrupts it", so each case names the answers the
contract allows (never a 5xx; never a 2xx for what must be refused; 404, not 403, for another
account's object). Every case is built so that, if the service wrongly accepted it, the damage
would show in the end checks: nothing here is valid enough to create a task or an endpoint, so
an extra task, charge, endpoint or delivery would be a finding too.

Forged and replayed provider callbacks are in ``forgery``; this module runs both.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from tools.soak.accounts import Account, Revoked
from tools.soak.api import Api
from tools.soak.cases import Case, Result, empty_list, judge
from tools.soak.forgery import Forgery
from tools.soak.load import Load
from tools.soak.report import Figure

ANY_4XX = frozenset(range(400, 500))
MIB = 1024 * 1024


def _json(body: object) -> bytes:
    return json.dumps(body).encode()


JSON = {"Content-Type": "application/json"}
VALID = {"prompt": "a quiet harbour at dawn", "model": "nano-banana"}
#: invalid task bodies (all JSON objects): each must be a 422 that charges nothing
BAD_TASKS: list[dict[str, object]] = [
    {}, {"prompt": ""}, {**VALID, "prompt": "x" * 5001}, {**VALID, "model": "gpt-image-1"},
    {**VALID, "num_images": 99}, {**VALID, "num_images": "2"}, {**VALID, "aspect_ratio": "7:5"},
    {**VALID, "resolution": "8k"}, {**VALID, "output_format": "gif"}, {**VALID, "type": "video"},
    {**VALID, "type": "edit"}, {**VALID, "images": ["file:///etc/passwd"]},
    {**VALID, "images": ["http://127.0.0.1:9/x.png"] * 15}, {**VALID, "seed": -1},
    {**VALID, "seed": "abc"}, {**VALID, "metadata": "x"}, {**VALID, "metadata": {"a": "x" * 5000}},
    {**VALID, "provider": "nope"}, {**VALID, "unknown_field": 1}, {**VALID, "prompt": 42},
    {**VALID, "prompt": "n.u.d.e portrait"}, {**VALID, "prompt": None},
]  # fmt: skip
#: byte strings that are not acceptable JSON (400)
BAD_JSON: list[bytes] = [
    b"", b"{", b'{"prompt": ', b"\xff\xfe{}", b'{"prompt": NaN, "model": "nano-banana"}',
    b'{"prompt": "x", "seed": 1e400}', b'{"prompt": "\\ud800", "model": "nano-banana"}',
    b"[" * 100_000, b'{"a":' * 50_000, b"null\x00",
]  # fmt: skip
BAD_ENDPOINTS: list[dict[str, object]] = [
    {}, {"url": "ftp://127.0.0.1/x"}, {"url": "http://169.254.169.254/latest/meta-data"},
    {"url": "http://10.1.2.3/hook"}, {"url": "http://[::ffff:169.254.169.254]/"},
    {"url": "http://127.0.0.1:9/x", "event_types": ["task.exploded"]},
    {"url": "http://127.0.0.1:9/x", "event_types": []},
    {"url": "http://127.0.0.1:9/x", "secret": "whsec_c2hvcnQ="},
    {"url": "http://127.0.0.1:9/x", "description": "d" * 10_000},
    {"url": "http://127.0.0.1:9/x", "enabled": True}, {"url": "not a url"}, {"url": 7},
]  # fmt: skip


@dataclass
class Garbage:
    api: Api
    accounts: list[Account]
    revoked: Revoked
    load: Load
    forgery: Forgery
    rng: random.Random
    results: list[Result] = field(default_factory=list)
    #: ids seen in each account (by the owner's key), to try with another account's key
    seen: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    async def run(self, seconds: float, rate: float) -> None:
        end = time.monotonic() + seconds
        pending: set[asyncio.Task[None]] = set()
        n = 0
        while time.monotonic() < end:
            if n % 40 == 0:
                await self._scout()
            make = self.rng.choice(self._makers())
            task = asyncio.create_task(self._send(make()))
            pending.add(task)
            task.add_done_callback(pending.discard)
            n += 1
            await asyncio.sleep(self.rng.expovariate(rate))
        await asyncio.gather(*pending)

    async def _send(self, case: Case | None) -> None:
        if case is None:
            return
        answer = await self.api.call(
            case.method, case.path, key=case.key, headers=case.headers, content=case.content
        )
        self.results.append(judge(case, answer))
        if case.kind.startswith("callback"):
            self.forgery.sent(case, answer)

    def _makers(self) -> list[Callable[[], Case | None]]:
        return [
            self._bad_auth, self._bad_auth, self._bad_task_body, self._bad_task_body,
            self._bad_json, self._wrong_type, self._oversized, self._bad_query,
            self._foreign, self._foreign, self._foreign, self._bad_endpoint, self._bad_patch,
            self._bad_route, self._bad_replay, self.forgery.case, self.forgery.case,
            self.forgery.case, self.forgery.case,
        ]  # fmt: skip

    def _me(self) -> Account:
        return self.rng.choice(self.accounts)

    def _bad_auth(self) -> Case:
        header = self.rng.choice(
            [None, "Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer thk_000000000000_" + "A" * 43,
             "Bearer " + self.revoked.key, "Bearer " + self.accounts[0].key + "x",
             "bearer" + self.accounts[0].key, "Bearer " + "z" * 9000]
        )  # fmt: skip
        method, path = self.rng.choice(
            [("GET", "/v1/tasks"), ("POST", "/v1/tasks"), ("GET", "/v1/account"),
             ("GET", "/v1/account/ledger"), ("GET", "/v1/events"), ("POST", "/v1/endpoints"),
             ("GET", "/v1/callbacks"), ("HEAD", "/v1/tasks"), ("DELETE", "/v1/endpoints/ep_x")]
        )  # fmt: skip
        headers = {} if header is None else {"Authorization": header}
        content = _json(VALID) if method == "POST" else None
        if content is not None:
            headers |= JSON
        return Case("bad auth", method, path, frozenset({401, 431, 400}), None, headers, content)

    def _bad_task_body(self) -> Case:
        if self.rng.random() < 0.2:  # a valid body, an Idempotency-Key that is not one
            key = self.rng.choice(["", "k" * 256, "a\tb"])
            return Case("bad idempotency key", "POST", "/v1/tasks", frozenset({400}),
                        self._me().key, {**JSON, "Idempotency-Key": key}, _json(VALID))  # fmt: skip
        body = self.rng.choice(BAD_TASKS)
        return Case("invalid task", "POST", "/v1/tasks", frozenset({422}), self._me().key, JSON,
                    _json(body))  # fmt: skip

    def _bad_json(self) -> Case:
        path = self.rng.choice(["/v1/tasks", "/v1/endpoints"])
        content = self.rng.choice(BAD_JSON)
        return Case("malformed json", "POST", path, frozenset({400}), self._me().key, JSON, content)

    def _wrong_type(self) -> Case:
        kind = self.rng.choice(["text/plain", "application/x-www-form-urlencoded", "", "json"])
        headers = {"Content-Type": kind} if kind else {}
        path = self.rng.choice(["/v1/tasks", "/v1/endpoints"])
        return Case("wrong content type", "POST", path, frozenset({415}), self._me().key,
                    headers, _json(VALID))  # fmt: skip

    def _oversized(self) -> Case:
        body = _json({**VALID, "metadata": {"blob": "x" * (MIB + 10)}})
        path = self.rng.choice(["/v1/tasks", "/v1/endpoints", "/callbacks/simulator/abc"])
        return Case("oversized", "POST", path, frozenset({413}), self._me().key, JSON, body)

    def _bad_query(self) -> Case:
        path, expect = self.rng.choice(
            [("/v1/tasks?limit=0", {422}), ("/v1/tasks?limit=101", {422}),
             ("/v1/tasks?limit=abc", {400}), ("/v1/tasks?limit=-1", {400}),
             ("/v1/tasks?cursor=%00%ff", {400}), ("/v1/tasks?cursor=c../../x", {400}),
             ("/v1/tasks?status=done", {422}), ("/v1/tasks?model=dall-e", {422}),
             ("/v1/tasks?created_after=yesterday", {400}), ("/v1/account/ledger?cursor=x", {400}),
             ("/v1/events?type=task.exploded", {422, 400}), ("/v1/events?after=noon", {400, 422}),
             ("/v1/callbacks?limit=1000000000000000000000", {422}),
             ("/v1/events?before=" + "9" * 5000, {400, 422}), ("/v1/endpoints?limit=x", {400}),
             ("/v1/endpoints?cursor=task_x", {400})]
        )  # fmt: skip
        me = self._me()
        if me.receivers and self.rng.random() < 0.2:
            ep = self.rng.choice(me.receivers).endpoint_id
            path, expect = self.rng.choice(
                [(f"/v1/endpoints/{ep}/deliveries?status=lost", {422, 400}),
                 (f"/v1/endpoints/{ep}/deliveries?limit=0", {422})]
            )  # fmt: skip
        return Case("bad query", "GET", path, frozenset(expect), me.key)

    def _foreign(self) -> Case | None:
        """Another account's object, with my key: 404, never 403, never its data."""
        me = self._me()
        others = [a for a in self.accounts if a is not me and self.seen.get(a.id)]
        if not others:
            return None
        theirs = self.seen[self.rng.choice(others).id]
        kind = self.rng.choice([k for k, ids in theirs.items() if ids])
        oid = self.rng.choice(theirs[kind])
        method, path = self.rng.choice(
            {
                "task": [("GET", f"/v1/tasks/{oid}"), ("GET", f"/v1/tasks/{oid}/timeline")],
                "endpoint": [("GET", f"/v1/endpoints/{oid}"), ("DELETE", f"/v1/endpoints/{oid}"),
                             ("POST", f"/v1/endpoints/{oid}/rotate-secret"),
                             ("POST", f"/v1/endpoints/{oid}/test"),
                             ("GET", f"/v1/endpoints/{oid}/deliveries"),
                             ("POST", f"/v1/endpoints/{oid}/recover"),
                             ("PATCH", f"/v1/endpoints/{oid}")],
                "event": [("GET", f"/v1/events/{oid}"), ("GET", f"/v1/events/{oid}/deliveries"),
                          ("POST", f"/v1/events/{oid}/replay")],
                "callback": [("POST", f"/v1/callbacks/{oid}/replay")],
                "delivery": [("GET", f"/v1/deliveries/{oid}/attempts")],
            }[kind]
        )  # fmt: skip
        if kind == "task" and self.rng.random() < 0.3:  # as a filter: nothing of theirs shows
            path = self.rng.choice([f"/v1/callbacks?task_id={oid}", f"/v1/events?task_id={oid}"])
            return Case("foreign id", "GET", path, frozenset({200}), me.key, check=empty_list)
        content: bytes | None = None
        headers: dict[str, str] = {}
        if method == "PATCH":
            content, headers = _json({"enabled": False, "url": "http://127.0.0.1:9/stolen"}), JSON
        elif path.endswith("/replay") and kind == "event":
            content, headers = _json({}), JSON
        elif kind == "endpoint" and path.endswith("/recover"):
            content, headers = _json({"since": "2020-01-01T00:00:00Z"}), JSON
        return Case("foreign id", method, path, frozenset({404}), me.key, headers, content)

    def _bad_endpoint(self) -> Case:
        body = self.rng.choice(BAD_ENDPOINTS)
        return Case("invalid endpoint", "POST", "/v1/endpoints", frozenset({422}),
                    self._me().key, JSON, _json(body))  # fmt: skip

    def _bad_patch(self) -> Case | None:
        """Nonsense for one of my own endpoints: refused, the endpoint left as it was."""
        me = self._me()
        if not me.receivers:
            return None
        ep = self.rng.choice(me.receivers).endpoint_id
        body = self.rng.choice(
            [{"enabled": "yes"}, {"url": "ftp://x"}, {"secret": "whsec_AAAA"},
             {"event_types": "all"}, {"url": "http://169.254.169.254/"}, {"id": "ep_x"}, []]
        )  # fmt: skip
        return Case("invalid patch", "PATCH", f"/v1/endpoints/{ep}", frozenset({422}), me.key,
                    JSON, _json(body))  # fmt: skip

    def _bad_route(self) -> Case:
        method, path, expect = self.rng.choice(
            [("GET", "/v2/tasks", {404}), ("GET", "/v1/tasks/", {404}), ("PUT", "/v1/tasks", {405}),
             ("DELETE", "/healthz", {405}), ("POST", "/metrics", {405}),
             ("POST", "/openapi.json", {405}), ("GET", "/v1/tasks/task_123", {404}),
             ("GET", "/v1/tasks/%2e%2e%2f%2e%2e%2fetc%2fpasswd", {404}),
             ("GET", "/v1/tasks/task_" + "Z" * 6000, {404, 414, 431, 400}),
             ("GET", "/v1/tasks/task_%F0%9F%92%A9", {404}),
             ("GET", "/callbacks/simulator/x", {405}),
             ("POST", "/v1/deliveries/dlv_x/attempts", {405}), ("GET", "/simulator/x", {404})]
        )  # fmt: skip
        return Case("bad route", method, path, frozenset(expect), self._me().key)

    def _bad_replay(self) -> Case | None:
        """Replays and recoveries that make no sense: bad windows, someone else's endpoint."""
        me = self._me()
        mine = self.seen.get(me.id, {})
        others = [r.endpoint_id for a in self.accounts if a is not me for r in a.receivers]
        choices: list[tuple[str, str, object, set[int]]] = []
        if mine.get("event") and others:
            event = self.rng.choice(mine["event"])
            target = self.rng.choice(others)
            choices.append(("POST", f"/v1/events/{event}/replay", {"endpoint_id": target}, {404}))
            choices.append(("POST", f"/v1/events/{event}/replay", {"endpoint_id": 5}, {422}))
        if me.receivers:
            ep = self.rng.choice(me.receivers).endpoint_id
            path = f"/v1/endpoints/{ep}/recover"
            choices += [
                ("POST", path, {"since": "last tuesday"}, {400}),
                ("POST", path, {}, {422}),
                ("POST", path, {"since": "2020-01-01T00:00:00Z", "until": "soon"}, {400}),
                ("POST", path, {"since": "2020-01-01T00:00:00Z", "dry_run": "yes"}, {422}),
            ]  # fmt: skip
        if not choices:
            return None
        method, path, body, expect = self.rng.choice(choices)
        return Case("bad replay", method, path, frozenset(expect), me.key, JSON, _json(body))

    async def _scout(self) -> None:
        """Learn a few ids of each account (with its own key) for the foreign-id cases."""
        for account in self.accounts:
            ids: dict[str, list[str]] = {
                "task": [
                    s.task_id for s in self.load.accepted if s.account is account and s.task_id
                ][-20:],
                "endpoint": [r.endpoint_id for r in account.receivers if r.endpoint_id],
            }
            for kind, path in (("event", "/v1/events"), ("callback", "/v1/callbacks")):
                answer = await self.api.call("GET", path, key=account.key, params={"limit": "5"})
                if answer.status == 200 and isinstance(answer.body, dict):
                    ids[kind] = [item["id"] for item in answer.body["data"]]
            if ids.get("event"):
                path = f"/v1/events/{ids['event'][0]}/deliveries"
                answer = await self.api.call("GET", path, key=account.key)
                if answer.status == 200 and isinstance(answer.body, dict):
                    ids["delivery"] = [item["id"] for item in answer.body["data"]]
            self.seen[account.id] = ids

    def figures(self) -> dict[str, Figure]:
        kinds = Counter(f"garbage {r.kind}" for r in self.results)
        counts: dict[str, Figure] = {
            "garbage requests": len(self.results),
            **dict(sorted(kinds.items())),
        }
        counts["garbage no answer (web down)"] = sum(1 for r in self.results if r.status is None)
        counts["garbage 5xx"] = sum(1 for r in self.results if (r.status or 0) >= 500)
        counts["garbage unexpected answers"] = sum(
            1 for r in self.results if r.status is not None and not r.expected
        )
        return counts
