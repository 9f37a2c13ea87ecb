"""nanobananapro.cloud: ``/api/v1/image/nano-banana`` (multipart) + ``/result``, poll-only.

The create call is multipart/form-data because that is how the API takes reference files: an
upload kept by taskhook is sent as a file (``imageFile``, its bytes read from the asset store),
any other reference image as its URL (``imageUrl``); both repeat, up to 14 in all. There is no
error envelope: failures are plain HTTP statuses. The API offers nano-banana-fast, nano-banana
and nano-banana-pro; Nano Banana 2 is not among them, so such a task is refused before any call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from service.core.ids import is_id
from service.core.ledger import Failure, TaskStatus
from service.core.tasks import Task
from service.providers.base import (
    ProviderConfig,
    ProviderRejected,
    ProviderUpdate,
    ReferenceFiles,
)
from service.providers.http import (
    PollOnly,
    call,
    is_http_url,
    malformed,
    progress_of,
    readable,
    task_id_from,
)

#: Our model names are the API's own.
MODELS = frozenset({"nano-banana-fast", "nano-banana", "nano-banana-pro"})
CREATE = "/api/v1/image/nano-banana"
RESULT = "/api/v1/image/nano-banana/result"


class NanoBananaProProvider(PollOnly):
    """The ``nanobananapro`` adapter. The shared ``client`` belongs to the app; it is borrowed."""

    name: str = "nanobananapro"
    takes_files: bool = True

    def __init__(
        self,
        config: ProviderConfig,
        client: httpx.AsyncClient,
        files: ReferenceFiles | None = None,
    ) -> None:
        super().__init__(config, client)
        self._files = files

    async def submit(self, task: Task, callback_url: str | None) -> str:
        """Create the image task; returns ``data.id``. ``callback_url`` is not used."""
        uploads = []
        for image in task.spec.images:
            if is_id(image, "upl"):
                if self._files is None:
                    raise ProviderRejected(
                        Failure("upload_unavailable", "Uploads cannot be read here.")
                    )
                found = await self._files.read(image)
                uploads.append(("imageFile", (found.filename, found.data, found.content_type)))
        body, _ = await call(
            self._client, self._config, "POST", CREATE, form=self.form_for(task), files=uploads
        )
        return task_id_from(self._config, body, "id", "create")

    async def fetch_status(self, provider_task_id: str) -> ProviderUpdate:
        """``POST …/result {"taskId"}``: running, succeeded (``results[].url``) or failed."""
        body, _ = await call(
            self._client, self._config, "POST", RESULT, json_body={"taskId": provider_task_id}
        )
        data = body.get("data")
        if not isinstance(data, dict):
            raise malformed(self._config, "result gave no data object")
        if data.get("id", provider_task_id) != provider_task_id:
            raise malformed(self._config, "result answered about another task")
        status = data.get("status")
        if status == "running":
            progress = progress_of(data.get("progress"))
            return ProviderUpdate(provider_task_id, TaskStatus.RUNNING, progress=progress)
        if status == "succeeded":
            urls = _result_urls(data.get("results"))
            # an empty list is a success that named no image: the task fails no_result
            if not urls and data.get("results") != []:
                raise malformed(self._config, "succeeded without result URLs")
            return ProviderUpdate(provider_task_id, TaskStatus.SUCCEEDED, result_urls=urls)
        if status == "failed":
            failure = self._failure(data)
            return ProviderUpdate(provider_task_id, TaskStatus.FAILED, failure=failure)
        raise malformed(self._config, f"status {str(status)[:40]!r} is not documented")

    def form_for(self, task: Task) -> list[tuple[str, str]]:
        """The multipart fields, in order; ``imageUrl`` once per reference image.

        There is no output-format field: the API picks the format, and the result's content type
        is taken from the task as for every provider.
        """
        spec = task.spec
        if spec.model not in MODELS:
            message = (
                f"nanobananapro does not offer {spec.model!r}; it runs {', '.join(sorted(MODELS))}."
            )
            raise ProviderRejected(Failure("model_unsupported", message))
        form = [
            ("prompt", spec.prompt),
            ("model", spec.model),
            ("mode", "image-to-image" if spec.images else "text-to-image"),
            ("aspectRatio", spec.aspect_ratio),
            ("imageSize", spec.resolution.upper()),
        ]
        form.extend(("imageUrl", url) for url in spec.images if not is_id(url, "upl"))
        return form

    def _failure(self, data: Mapping[str, Any]) -> Failure:
        reason = next(
            (
                value.strip()
                for value in (data.get("failure_reason"), data.get("error"))
                if isinstance(value, str) and value.strip()
            ),
            None,
        )
        text = f"nanobananapro failed the task: {reason}" if reason else "nanobananapro failed."
        return Failure("provider_failed", readable(text, (self._config.api_key,)))


def _result_urls(results: object) -> tuple[str, ...]:
    """``results`` is ``[{url, content?}, …]``; any item without an http(s) URL spoils it."""
    if not isinstance(results, list):
        return ()
    urls = [item.get("url") if isinstance(item, dict) else None for item in results]
    if not all(is_http_url(url) for url in urls):
        return ()
    return tuple(url for url in urls if isinstance(url, str))
