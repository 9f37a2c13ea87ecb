"""A fake nanobananapro.cloud: the multipart create call and the JSON ``/result`` call (seed 003).

Errors are plain HTTP statuses with an ``{"error": ...}`` body. The multipart body is parsed with
the standard library (the fake must not depend on python-multipart).
"""

from __future__ import annotations

from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.providers.fakes import FakeUpstream, Recorded, reply

MODELS = {"nano-banana-fast": 5, "nano-banana": 15, "nano-banana-pro": 20}


class FakeNanoBananaPro(FakeUpstream):
    def routes(self) -> list[Route]:
        return [
            self.route("/api/v1/image/nano-banana", self._create, "POST"),
            self.route("/api/v1/image/nano-banana/result", self._result, "POST"),
        ]

    async def _create(self, _request: Request, recorded: Recorded) -> Response:
        if not self.authorized(recorded):
            return reply({"error": "Not authenticated"}, 401)
        content_type = recorded.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return reply({"error": "Expected multipart/form-data"}, 400)
        fields = form_fields(content_type, recorded.body)
        files = form_files(content_type, recorded.body)
        problem = _invalid(fields, sum(1 for f in files if f[0] == "imageFile"))
        if problem:
            return reply({"error": problem}, 400)
        task_id = self.new_id("task-")
        model = fields["model"][0]
        self.tasks[task_id] = {
            "id": task_id,
            "results": [],
            "progress": 0,
            "status": "running",
            "failure_reason": None,
            "error": None,
            "credits_cost": MODELS[model],
        }
        return reply({"data": self.tasks[task_id]})

    async def _result(self, _request: Request, recorded: Recorded) -> Response:
        if not self.authorized(recorded):
            return reply({"error": "Not authenticated"}, 401)
        try:
            body = recorded.json
        except ValueError:
            body = None
        task_id = (body.get("taskId") or body.get("id")) if isinstance(body, dict) else None
        if not task_id:
            return reply({"error": "Missing task ID"}, 400)
        task = self.tasks.get(task_id)
        if task is None:
            return reply({"error": "Task not found"}, 404)
        return reply({"data": task})

    def set(self, task_id: str, status: str, **fields: Any) -> None:
        self.tasks[task_id].update(status=status, **fields)


def _parts(content_type: str, body: bytes) -> list[tuple[str, str | None, str, bytes]]:
    """``(name, filename, content type, payload)`` of each part, in order."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    parts = []
    for part in message.iter_parts():
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        filename = part.get_param("filename", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(name, str)
        assert isinstance(payload, bytes)
        parts.append((name, filename if isinstance(filename, str) else None,
                      part.get_content_type(), payload))  # fmt: skip
    return parts


def form_fields(content_type: str, body: bytes) -> dict[str, list[str]]:
    """The text fields of a multipart/form-data body, repeated names kept in order."""
    fields: dict[str, list[str]] = {}
    for name, filename, _, payload in _parts(content_type, body):
        if filename is None:
            fields.setdefault(name, []).append(payload.decode())
    return fields


def form_files(content_type: str, body: bytes) -> list[tuple[str, str, str, bytes]]:
    """The file parts: ``(field, filename, content type, bytes)``."""
    return [
        (name, filename, kind, payload)
        for name, filename, kind, payload in _parts(content_type, body)
        if filename is not None
    ]


def _invalid(fields: dict[str, list[str]], image_files: int) -> str | None:
    if not fields.get("prompt", [""])[0]:
        return "Missing required params: prompt"
    if fields.get("model", [""])[0] not in MODELS:
        return "Invalid model"
    mode = fields.get("mode", ["text-to-image"])[0]
    if mode not in ("text-to-image", "image-to-image"):
        return "Invalid mode"
    if mode == "image-to-image" and not (fields.get("imageUrl") or image_files):
        return "image-to-image requires imageFile or imageUrl"
    if len(fields.get("imageUrl", [])) + image_files > 14:
        return "At most 14 reference images"
    if fields.get("imageSize", ["1K"])[0] not in ("1K", "2K", "4K"):
        return "imageSize must be 1K, 2K or 4K"
    return None
