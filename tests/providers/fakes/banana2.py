"""A fake banana2api.com: ``POST /api/generate`` and ``GET /api/status`` (seed 001).

Errors are real HTTP statuses with the ``{"code", "message"}`` envelope: 400 for bad parameters,
401 for a missing or wrong key, 404 for an unknown task.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.providers.fakes import FakeUpstream, Recorded, reply

ASPECT_RATIOS = {"1:1", "3:2", "2:3", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"}


class FakeBanana2(FakeUpstream):
    def routes(self) -> list[Route]:
        return [
            self.route("/api/generate", self._generate, "POST"),
            self.route("/api/status", self._status, "GET"),
        ]

    async def _generate(self, _request: Request, recorded: Recorded) -> Response:
        if not self.authorized(recorded):
            return reply({"code": 401, "message": "Unauthorized"}, 401)
        try:
            body = recorded.json
        except ValueError:
            return reply({"code": 400, "message": "Invalid JSON"}, 400)
        problem = _invalid(body)
        if problem:
            return reply({"code": 400, "message": problem}, 400)
        task_id = self.new_id("n82")
        kind = body.get("type") or ("edit" if body.get("images") else "text-to-image")
        self.tasks[task_id] = {
            "task_id": task_id,
            "status": "IN_PROGRESS",
            "type": kind,
            "model": "nano-banana-2",
            "consumed_credits": 24 if kind == "edit" else 20,
            "response": [],
            "request": {"prompt": body["prompt"]},
            "created_at": "2025-03-20T10:00:00Z",
        }
        data = {"task_id": task_id, "type": kind, "status": "IN_PROGRESS"}
        return reply({"code": 200, "message": "success", "data": data})

    async def _status(self, _request: Request, recorded: Recorded) -> Response:
        if not self.authorized(recorded):
            return reply({"code": 401, "message": "Unauthorized"}, 401)
        task = self.tasks.get(recorded.query.get("task_id", ""))
        if task is None:
            return reply({"code": 404, "message": "Task not found"}, 404)
        return reply({"code": 200, "message": "success", "data": task})

    def set(self, task_id: str, status: str, **fields: Any) -> None:
        self.tasks[task_id].update(status=status, **fields)


def _invalid(body: object) -> str | None:
    if not isinstance(body, dict):
        return "body must be an object"
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not 0 < len(prompt) <= 5000:
        return "prompt is required (max 5000 characters)"
    images = body.get("images")
    kind = body.get("type", "text-to-image")
    if kind not in ("text-to-image", "edit"):
        return "type must be text-to-image or edit"
    if kind == "edit" and not (isinstance(images, list) and 0 < len(images) <= 14):
        return "images is required for edit (max 14)"
    if body.get("aspect_ratio", "1:1") not in ASPECT_RATIOS:
        return "invalid aspect_ratio"
    if body.get("resolution", "1k") not in ("1k", "2k", "4k"):
        return "resolution must be 1k, 2k or 4k"
    if body.get("output_format", "png") not in ("png", "jpeg"):
        return "output_format must be png or jpeg"
    return None
