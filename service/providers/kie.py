"""Kie.ai's market API (``/api/v1/jobs/createTask`` + ``recordInfo``), with callbacks.

Kie answers most errors as HTTP 200 with a ``code`` in the body; that code is treated exactly like
an HTTP status (``http.check_body_code``). Its own codes 455 ("service unavailable, maintenance")
and 505 ("feature disabled") are reclassified: the first will pass, the second will not.

Kie's callback signature covers ``taskId.timestamp`` and not the body, so anyone who once saw a
signed callback could replay its headers with a different body within the tolerance window. That
is why ``confirms_callbacks`` is True: the caller re-reads the task with ``recordInfo`` before it
applies what a callback claims.
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from service.core.ledger import Failure, TaskStatus
from service.core.signing import SignatureInvalid
from service.core.tasks import Task
from service.providers.base import CallbackInvalid, ProviderConfig, ProviderRejected, ProviderUpdate
from service.providers.http import (
    StatusPolicy,
    call,
    check_body_code,
    is_http_url,
    is_task_id,
    malformed,
    progress_of,
    readable,
    task_id_from,
)

KIE_POLICY = StatusPolicy(retryable=frozenset({455}), rejected=frozenset({505}))


@dataclass(frozen=True)
class KieModel:
    """How Kie names one of our models and spells its inputs.

    Kie's catalogue is not uniform: the Gemini 2.5 models live under ``google/`` with a separate
    edit model, take reference images as ``image_urls`` and the aspect ratio as ``image_size``,
    and have one size; the newer ones take ``image_input``, ``aspect_ratio`` and ``resolution``,
    and spell JPEG ``jpg``.
    """

    text: str
    edit: str
    images_field: str = "image_input"
    ratio_field: str = "aspect_ratio"
    resolution: bool = True
    jpeg: str = "jpg"


_GEMINI_25 = KieModel(
    "google/nano-banana",
    "google/nano-banana-edit",
    images_field="image_urls",
    ratio_field="image_size",
    resolution=False,
    jpeg="jpeg",
)

#: Our model → Kie's. nano-banana-fast has no Kie listing of its own; the Gemini 2.5 Flash model
#: behind nano-banana is the fast one, so both map there.
KIE_MODELS: dict[str, KieModel] = {
    "nano-banana": _GEMINI_25,
    "nano-banana-fast": _GEMINI_25,
    "nano-banana-pro": KieModel("nano-banana-pro", "nano-banana-pro"),
    "nano-banana-2": KieModel("nano-banana-2", "nano-banana-2"),
}

_SUBMITTED_STATES = frozenset({"waiting", "queuing", "wait", "queueing"})


class Unusable(ValueError):
    """A task record (from a poll or a callback) that does not say anything we can apply."""


class KieProvider:
    """The ``kie`` adapter. The shared ``client`` belongs to the app; this only borrows it."""

    name: str = "kie"
    accepts_callbacks: bool = True
    confirms_callbacks: bool = True
    takes_files: bool = False

    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient) -> None:
        self._config = config
        self._client = client

    async def submit(self, task: Task, callback_url: str | None) -> str:
        """``createTask``; returns Kie's ``taskId``."""
        payload: dict[str, Any] = {"model": self.model_name(task), "input": self.input_for(task)}
        if callback_url:
            payload["callBackUrl"] = callback_url
        body, headers = await call(
            self._client,
            self._config,
            "POST",
            "/api/v1/jobs/createTask",
            json_body=payload,
            policy=KIE_POLICY,
        )
        check_body_code(self._config, body, headers, KIE_POLICY)
        return task_id_from(self._config, body, "taskId", "createTask")

    async def fetch_status(self, provider_task_id: str) -> ProviderUpdate:
        """``recordInfo``: waiting/queuing → submitted, generating → running, success, fail."""
        body, headers = await call(
            self._client,
            self._config,
            "GET",
            "/api/v1/jobs/recordInfo",
            params={"taskId": provider_task_id},
            policy=KIE_POLICY,
        )
        check_body_code(self._config, body, headers, KIE_POLICY)
        try:
            return self.update_from(body.get("data"), expected_id=provider_task_id)
        except Unusable as exc:
            raise malformed(self._config, f"recordInfo: {exc}") from None

    def verify_callback(self, headers: Mapping[str, str], body: bytes, now_ms: int) -> None:
        """Kie's HMAC: ``X-Webhook-Signature`` = base64(HMAC-SHA256(key, "{taskId}.{timestamp}")).

        Without a configured key this passes: the claims are confirmed with ``recordInfo``.
        Header checks come before the body is read so an unsigned caller learns nothing more
        than "401".
        """
        key = self._config.webhook_key
        if not key:
            return
        stamp = headers.get("x-webhook-timestamp", "").strip()
        given = headers.get("x-webhook-signature", "").strip()
        if not stamp or not given:
            raise SignatureInvalid("Missing X-Webhook-Timestamp or X-Webhook-Signature.")
        if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 16:
            raise SignatureInvalid("X-Webhook-Timestamp is not a unix time.")
        if not given.isascii():
            raise SignatureInvalid("X-Webhook-Signature is not base64.")
        seconds = int(stamp)
        if seconds > 10**12:  # milliseconds
            seconds //= 1000
        if abs(now_ms // 1000 - seconds) > self._config.timestamp_tolerance_s:
            raise SignatureInvalid("X-Webhook-Timestamp is outside the allowed window.")
        task_id = _callback_data(body).get("taskId")
        if not is_task_id(task_id):
            raise CallbackInvalid("The callback has no data.taskId.")
        signed = f"{task_id}.{stamp}".encode()
        expected = base64.b64encode(hmac.digest(key.encode(), signed, "sha256"))
        if not hmac.compare_digest(given.encode(), expected):
            raise SignatureInvalid("X-Webhook-Signature does not match.")

    def parse_callback(self, body: bytes) -> ProviderUpdate:
        """The ``{code, msg, data: {taskId, state, resultJson, failCode, failMsg…}}`` envelope."""
        try:
            return self.update_from(_callback_data(body), expected_id=None)
        except Unusable as exc:
            raise CallbackInvalid(f"The callback cannot be used: {exc}.") from None

    def model_name(self, task: Task) -> str:
        """Kie's model for ``task`` (an unknown model is refused before any call)."""
        model = self._model(task)
        return model.edit if task.spec.type == "edit" else model.text

    def input_for(self, task: Task) -> dict[str, Any]:
        """The ``input`` object, in the spelling of the task's Kie model.

        ``num_images`` and ``seed`` are not sent: Kie's Nano Banana models document neither.
        """
        spec = task.spec
        model = self._model(task)
        data: dict[str, Any] = {
            "prompt": spec.prompt,
            model.ratio_field: spec.aspect_ratio,
            "output_format": model.jpeg if spec.output_format == "jpeg" else spec.output_format,
        }
        if model.resolution:
            data["resolution"] = spec.resolution.upper()
        if spec.images:
            data[model.images_field] = list(spec.images)
        return data

    def update_from(self, data: object, *, expected_id: str | None) -> ProviderUpdate:
        """A Kie task record → ``ProviderUpdate``; ``Unusable`` says why it cannot be one."""
        if not isinstance(data, dict):
            raise Unusable("data is not an object")
        task_id = data.get("taskId")
        if not is_task_id(task_id):
            raise Unusable("data.taskId is missing")
        if expected_id is not None and task_id != expected_id:
            raise Unusable("the record is about another task")
        state = data.get("state")
        if not isinstance(state, str):
            raise Unusable("data.state is missing")
        progress = progress_of(data.get("progress"))
        if state in _SUBMITTED_STATES:
            return ProviderUpdate(task_id, TaskStatus.SUBMITTED, progress=progress)
        if state == "generating":
            return ProviderUpdate(task_id, TaskStatus.RUNNING, progress=progress)
        if state == "success":
            urls = _result_urls(data.get("resultJson"))
            return ProviderUpdate(task_id, TaskStatus.SUCCEEDED, result_urls=urls)
        if state == "fail":
            return ProviderUpdate(task_id, TaskStatus.FAILED, failure=self._failure(data))
        raise Unusable(f"state {str(state)[:40]!r} is not one Kie documents")

    def _failure(self, data: Mapping[str, Any]) -> Failure:
        reason = data.get("failMsg")
        code = data.get("failCode")
        text = f"{self.name} failed the task"
        text += f": {reason}" if isinstance(reason, str) and reason.strip() else "."
        if isinstance(code, str | int) and not isinstance(code, bool) and str(code).strip():
            text += f" (failCode {code})"
        secrets = (self._config.api_key, self._config.webhook_key)
        return Failure("provider_failed", readable(text, secrets))

    def _model(self, task: Task) -> KieModel:
        model = KIE_MODELS.get(task.spec.model)
        if model is None:
            message = f"{self.name} does not offer the model {task.spec.model!r}."
            raise ProviderRejected(Failure("model_unsupported", message))
        return model


def _callback_data(body: bytes) -> dict[str, Any]:
    """The ``data`` object of a callback body; ``CallbackInvalid`` if there is none."""
    try:
        envelope = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CallbackInvalid("The callback body is not UTF-8 JSON.") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("data"), dict):
        raise CallbackInvalid("The callback body is not an object with a data object.")
    data: dict[str, Any] = envelope["data"]
    return data


def _result_urls(result_json: object) -> tuple[str, ...]:
    """``resultJson`` is a JSON *string* holding ``{"resultUrls": [...]}``."""
    if not isinstance(result_json, str):
        raise Unusable("resultJson is not a JSON string")
    try:
        result = json.loads(result_json)
    except (ValueError, RecursionError):
        raise Unusable("resultJson is not JSON") from None
    urls = result.get("resultUrls") if isinstance(result, dict) else None
    # an empty list is a success that named no image: the task fails no_result (refunded)
    if not isinstance(urls, list) or not all(is_http_url(url) for url in urls):
        raise Unusable("resultJson.resultUrls is not a list of http(s) URLs")
    return tuple(urls)
