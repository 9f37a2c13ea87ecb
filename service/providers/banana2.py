"""banana2api.com: the NanoBanana 2 API (``/api/generate`` + ``/api/status``), poll-only.

The API runs one model, Nano Banana 2, and has no model field: a task for any other model is
refused before a call is made rather than silently generated (and priced) as another model. It
has no callbacks either, so the reconciler polls every task. Like Kie it wraps answers in
``{"code", "message", "data"}``; a body ``code`` other than 200 counts as that HTTP status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from service.core.ledger import Failure, TaskStatus
from service.core.tasks import Task
from service.providers.base import ProviderRejected, ProviderUpdate
from service.providers.http import (
    PollOnly,
    call,
    check_body_code,
    is_http_url,
    malformed,
    progress_of,
    readable,
    task_id_from,
)

MODEL = "nano-banana-2"
#: The documented aspect ratios; ``auto`` is not one, and the API's default is 1:1 (also what
#: ``auto`` means to us), so ``auto`` is simply not sent.
ASPECT_RATIOS = frozenset({"1:1", "3:2", "2:3", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"})


class Banana2Provider(PollOnly):
    """The ``banana2`` adapter. The shared ``client`` belongs to the app; this only borrows it."""

    name: str = "banana2"

    async def submit(self, task: Task, callback_url: str | None) -> str:
        """``POST /api/generate``; returns ``data.task_id``. ``callback_url`` is not used."""
        body, headers = await call(
            self._client, self._config, "POST", "/api/generate", json_body=self.request_for(task)
        )
        check_body_code(self._config, body, headers)
        return task_id_from(self._config, body, "task_id", "generate")

    async def fetch_status(self, provider_task_id: str) -> ProviderUpdate:
        """``GET /api/status``: IN_PROGRESS → running, SUCCESS → succeeded, FAILED → failed."""
        body, headers = await call(
            self._client,
            self._config,
            "GET",
            "/api/status",
            params={"task_id": provider_task_id},
        )
        check_body_code(self._config, body, headers)
        data = body.get("data")
        if not isinstance(data, dict):
            raise malformed(self._config, "status gave no data object")
        if data.get("task_id", provider_task_id) != provider_task_id:
            raise malformed(self._config, "status answered about another task")
        status = data.get("status")
        progress = progress_of(data.get("progress"))
        if status == "IN_PROGRESS":
            return ProviderUpdate(provider_task_id, TaskStatus.RUNNING, progress=progress)
        if status == "SUCCESS":
            urls = data.get("response")
            # an empty list is a success that named no image: the task fails no_result
            if not isinstance(urls, list) or not all(map(is_http_url, urls)):
                raise malformed(self._config, "SUCCESS without a list of image URLs in response")
            return ProviderUpdate(provider_task_id, TaskStatus.SUCCEEDED, result_urls=tuple(urls))
        if status == "FAILED":
            failure = self._failure(data, body)
            return ProviderUpdate(provider_task_id, TaskStatus.FAILED, failure=failure)
        raise malformed(self._config, f"status {str(status)[:40]!r} is not documented")

    def request_for(self, task: Task) -> dict[str, Any]:
        """The ``/api/generate`` body, in the API's spelling (lower-case ``1k``, ``jpeg``)."""
        spec = task.spec
        if spec.model != MODEL:
            message = f"banana2 only runs {MODEL}, not {spec.model!r}."
            raise ProviderRejected(Failure("model_unsupported", message))
        request: dict[str, Any] = {
            "prompt": spec.prompt,
            "type": spec.type,
            "resolution": spec.resolution,
            "output_format": spec.output_format,
        }
        if spec.aspect_ratio in ASPECT_RATIOS:
            request["aspect_ratio"] = spec.aspect_ratio
        if spec.images:
            request["images"] = list(spec.images)
        return request

    def _failure(self, data: Mapping[str, Any], body: Mapping[str, Any]) -> Failure:
        reason = next(
            (
                value.strip()
                for value in (data.get("error"), data.get("message"), body.get("message"))
                if isinstance(value, str) and value.strip() and value.strip() != "success"
            ),
            None,
        )
        text = f"banana2 failed the task: {reason}" if reason else "banana2 failed the task."
        return Failure("provider_failed", readable(text, (self._config.api_key,)))
