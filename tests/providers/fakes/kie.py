"""A fake Kie.ai market API: ``createTask``, ``recordInfo`` and signed callbacks.

Like Kie, it answers request errors as HTTP 200 with the error in the body ``code`` (422 for a
validation error, 404 for an unknown task) and only a missing or wrong key as a real 401. Task
records have the documented shape, ``resultJson`` being a JSON *string*.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.providers.fakes import FakeUpstream, Recorded, reply

#: the models the fake market lists (a subset of Kie's catalogue: the Nano Banana family)
MODELS = frozenset(
    {"google/nano-banana", "google/nano-banana-edit", "nano-banana-pro", "nano-banana-2"}
)


class FakeKie(FakeUpstream):
    def routes(self) -> list[Route]:
        return [
            self.route("/api/v1/jobs/createTask", self._create, "POST"),
            self.route("/api/v1/jobs/recordInfo", self._record, "GET"),
        ]

    async def _create(self, _request: Request, recorded: Recorded) -> Response:
        if not self.authorized(recorded):
            return reply({"code": 401, "msg": "You do not have access permissions"}, 401)
        try:
            body = recorded.json
        except ValueError:
            return reply({"code": 400, "msg": "Request body is not JSON"})
        problem = _invalid(body)
        if problem:
            return reply({"code": 422, "msg": problem})
        task_id = self.new_id("kie_")
        now = int(time.time() * 1000)
        self.tasks[task_id] = {
            "taskId": task_id,
            "model": body["model"],
            "state": "waiting",
            "param": json.dumps(body),
            "resultJson": "",
            "failCode": "",
            "failMsg": "",
            "costTime": None,
            "completeTime": None,
            "createTime": now,
        }
        return reply({"code": 200, "msg": "success", "data": {"taskId": task_id}})

    async def _record(self, _request: Request, recorded: Recorded) -> Response:
        if not self.authorized(recorded):
            return reply({"code": 401, "msg": "You do not have access permissions"}, 401)
        task = self.tasks.get(recorded.query.get("taskId", ""))
        if task is None:
            return reply({"code": 404, "msg": "Task not found"})
        return reply({"code": 200, "message": "success", "data": task})

    def succeed(self, task_id: str, urls: list[str]) -> None:
        self.tasks[task_id].update(
            state="success", resultJson=json.dumps({"resultUrls": urls}), completeTime=1
        )

    def fail(self, task_id: str, code: str, message: str) -> None:
        self.tasks[task_id].update(state="fail", failCode=code, failMsg=message)


def _invalid(body: object) -> str | None:
    if not isinstance(body, dict):
        return "body must be an object"
    if body.get("model") not in MODELS:
        return "model name not supported"
    data = body.get("input")
    if not isinstance(data, dict) or not isinstance(data.get("prompt"), str):
        return "input.prompt is required"
    callback = body.get("callBackUrl")
    if callback is not None and not (isinstance(callback, str) and callback.startswith("http")):
        return "callBackUrl must be a URL"
    return None


def callback_body(task_id: str, state: str, **fields: Any) -> bytes:
    """A callback envelope as Kie sends it (``fields`` override or add to ``data``)."""
    data: dict[str, Any] = {
        "taskId": task_id,
        "model": "nano-banana-pro",
        "state": state,
        "param": "{}",
        "resultJson": "",
        "failCode": "",
        "failMsg": "",
        "costTime": 8,
        "completeTime": 1_700_000_008_000,
        "createTime": 1_700_000_000_000,
        "creditsConsumed": 18,
    }
    data.update(fields)
    code = 501 if state == "fail" else 200
    return json.dumps({"code": code, "msg": "done", "data": data}).encode()


def signature(key: str, task_id: str, timestamp: str) -> str:
    """Kie's ``X-Webhook-Signature``: base64(HMAC-SHA256(key, "{taskId}.{timestamp}"))."""
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signed_headers(key: str, task_id: str, timestamp: int | str) -> dict[str, str]:
    stamp = str(timestamp)
    return {"x-webhook-timestamp": stamp, "x-webhook-signature": signature(key, task_id, stamp)}
