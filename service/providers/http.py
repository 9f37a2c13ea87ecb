"""Talking HTTP to a provider: one request, and its outcome in the core's terms.

Every adapter sends its calls through :func:`call`, so the three upstream providers fail the same
way. The mapping, and why:

==========================================  ==================  ===============================
what happened                               raised              ``failure.code``
==========================================  ==================  ===============================
connection error, timeout, past deadline    ProviderRetryable   (none: nothing is decided yet)
408, 429, 5xx except 501                    ProviderRetryable   (``retry_after_s`` from header)
400                                         ProviderRejected    ``provider_bad_request``
401, 403                                    ProviderRejected    ``provider_unauthorized``
402                                         ProviderRejected    ``provider_insufficient_credits``
404                                         ProviderRejected    ``provider_not_found``
422 and any other 4xx                       ProviderRejected    ``provider_rejected``
501 (Kie: "generation failed")              ProviderRejected    ``provider_failed``
3xx, or 2xx whose body is not usable        ProviderRetryable   (the provider misbehaved)
==========================================  ==================  ===============================

Retryable means the same request may well succeed later: the provider is busy, down or slow. A
rejection will not get better by asking again, so the task fails readably and is refunded. 501 is
a rejection because "not implemented" is a property of the request, not of the moment. A 2xx we
cannot read is retried rather than failed because the fault is the provider's, not the task's
(the submitter's give-up time bounds the retries); the price is that a create call the provider
did accept may be sent again. ``config.timeout_s`` bounds the whole exchange, not each phase.
Providers that report errors in the body of a
200 (Kie, banana2) pass the body ``code`` through :func:`check_body_code`, which treats it exactly
like an HTTP status; ``StatusPolicy`` lets a provider reclassify its own non-standard codes.

Messages are sentences a customer can read. They quote the provider's ``msg``/``message``, are cut
to 300 characters, and have the API key scrubbed out even if the provider echoes it back.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any, TypeGuard
from urllib.parse import urlsplit

import httpx

from service.core.ledger import Failure
from service.providers.base import (
    CallbackInvalid,
    ProviderConfig,
    ProviderError,
    ProviderRejected,
    ProviderRetryable,
    ProviderUpdate,
)

MAX_MESSAGE = 300
MAX_BODY = 1024 * 1024
MAX_TASK_ID = 200
REDACTED = "[redacted]"

_REJECTION_CODES = {
    400: "provider_bad_request",
    401: "provider_unauthorized",
    403: "provider_unauthorized",
    402: "provider_insufficient_credits",
    404: "provider_not_found",
    501: "provider_failed",
}


@dataclass(frozen=True)
class StatusPolicy:
    """A provider's exceptions to the standard mapping (e.g. Kie's 455 means "maintenance")."""

    retryable: frozenset[int] = frozenset()
    rejected: frozenset[int] = frozenset()

    def is_retryable(self, status: int) -> bool:
        if status in self.retryable:
            return True
        if status in self.rejected:
            return False
        if status == 501:
            return False
        if status >= 500 or status in (408, 429):
            return True
        return not 400 <= status < 500  # 1xx/3xx: the provider misbehaved


STANDARD = StatusPolicy()


def parse_retry_after(value: str | None, now_s: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date); ``None`` if
    absent or unreadable, so that a garbled header falls back to our own backoff."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(int(text)) if len(text) <= 12 else None
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less one is not a valid date
        return None
    now = time.time() if now_s is None else now_s
    return max(0.0, moment.timestamp() - now)


def readable(text: str, secrets: Sequence[str | None] = ()) -> str:
    """``text`` on one line, without any secret, at most ``MAX_MESSAGE`` characters."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    # A provider's message may hold lone surrogates (a JSON "\ud800"): storable text only.
    text = " ".join(text.encode("utf-8", "replace").decode("utf-8").split())
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 1].rstrip() + "…"
    return text


def provider_message(body: object) -> str | None:
    """The human part of a provider's error body (``msg``, ``message``, ``error``…), if any."""
    if not isinstance(body, Mapping):
        return None
    for key in ("msg", "message", "error", "failure_reason", "detail"):
        value = body.get(key)
        if isinstance(value, Mapping):
            value = value.get("message")
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def error_for_status(
    config: ProviderConfig,
    status: int,
    detail: str | None,
    headers: Mapping[str, str],
    policy: StatusPolicy = STANDARD,
) -> ProviderError:
    """The error an HTTP (or body) status stands for; see the module docstring's table."""
    try:
        reason = f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        reason = f"HTTP {status}"
    said = f": {detail}" if detail else ""
    if policy.is_retryable(status):
        message = f"{config.name} could not take the request now ({reason}){said}"
        retry_after = parse_retry_after(headers.get("retry-after"))
        return ProviderRetryable(_clean(message, config), retry_after_s=retry_after)
    code = _REJECTION_CODES.get(status, "provider_rejected")
    message = f"{config.name} refused the request ({reason}){said}"
    return ProviderRejected(Failure(code, _clean(message, config)))


def malformed(config: ProviderConfig, what: str) -> ProviderRetryable:
    """A 2xx answer we cannot use: the provider misbehaved, so try again later."""
    return ProviderRetryable(_clean(f"{config.name} sent an unusable answer: {what}", config))


class PollOnly:
    """Base of providers that never call back: whatever arrives on their callback route is
    refused, and the reconciler polls them on an interval instead."""

    name: str
    accepts_callbacks: bool = False
    confirms_callbacks: bool = False
    takes_files: bool = False

    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient) -> None:
        self._config = config
        self._client = client

    def verify_callback(self, headers: Mapping[str, str], body: bytes, now_ms: int) -> None:
        raise CallbackInvalid(f"{self.name} does not call back.")

    def parse_callback(self, body: bytes) -> ProviderUpdate:
        raise CallbackInvalid(f"{self.name} does not call back.")


def task_id_from(config: ProviderConfig, body: Mapping[str, Any], key: str, what: str) -> str:
    """``body["data"][key]`` when it is a usable provider task id; else the provider misbehaved."""
    data = body.get("data")
    task_id = data.get(key) if isinstance(data, dict) else None
    if not is_task_id(task_id):
        raise malformed(config, f"{what} gave no usable data.{key}")
    return task_id


def check_body_code(
    config: ProviderConfig,
    body: Mapping[str, Any],
    headers: Mapping[str, str],
    policy: StatusPolicy = STANDARD,
) -> None:
    """Raise for an envelope ``code`` other than 200, exactly as for that HTTP status."""
    code = body.get("code")
    if isinstance(code, str) and code.isascii() and code.isdigit():
        code = int(code)
    if code is None or code == 200:
        return
    if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 999:
        raise malformed(config, f"code {str(code)[:20]!r} is not a status")
    if 200 <= code < 300:
        return
    raise error_for_status(config, code, provider_message(body), headers, policy)


async def call(
    client: httpx.AsyncClient,
    config: ProviderConfig,
    method: str,
    path: str,
    *,
    json_body: Mapping[str, Any] | None = None,
    params: Mapping[str, str] | None = None,
    form: Sequence[tuple[str, str]] | None = None,
    files: Sequence[tuple[str, tuple[str, bytes, str]]] = (),
    policy: StatusPolicy = STANDARD,
) -> tuple[dict[str, Any], httpx.Headers]:
    """Send one request and return its JSON object and headers, or raise a ``ProviderError``.

    ``form`` is sent as multipart/form-data (repeated names allowed), with ``files`` — ``(field,
    (filename, bytes, content type))`` — as its file parts. Redirects are never
    followed: an API that redirects is misconfigured, and following it could leak the key.
    """
    headers = {"Accept": "application/json"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    parts: list[tuple[str, tuple[str | None, bytes] | tuple[str, bytes, str]]] = [
        (name, (None, value.encode())) for name, value in form or ()
    ]
    parts.extend(files)
    url = config.base_url.rstrip("/") + path
    try:
        # httpx's timeout bounds each phase; the deadline bounds the whole exchange, so a
        # provider dribbling a byte a second cannot hold a worker for minutes
        async with asyncio.timeout(config.timeout_s):
            async with client.stream(
                method,
                url,
                headers=headers,
                params=params,
                json=json_body,
                files=parts or None,
                timeout=config.timeout_s,
                follow_redirects=False,
            ) as response:
                content = await _read_capped(response)
    except (TimeoutError, httpx.TimeoutException):
        raise ProviderRetryable(
            f"{config.name} did not answer within {config.timeout_s:g} s."
        ) from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        # connection refused or reset, protocol or decoding errors, a base URL httpx refuses
        raise ProviderRetryable(
            _clean(f"Could not reach {config.name} ({type(exc).__name__}): {exc}", config)
        ) from None
    body = _json_object(content) if content is not None else None
    if not 200 <= response.status_code < 300:
        detail = provider_message(body) if body is not None else _plain(response, content)
        raise error_for_status(config, response.status_code, detail, response.headers, policy)
    if body is None:
        raise malformed(config, f"HTTP {response.status_code} without a JSON object body")
    return body, response.headers


def is_http_url(value: object) -> bool:
    """An absolute http(s) URL with a host: the only kind of result we pass on to clients."""
    if not isinstance(value, str) or not value or len(value) > 4096 or not value.isprintable():
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and " " not in value


def is_task_id(value: object) -> TypeGuard[str]:
    """A provider task id we are willing to store and put in URLs: short, printable, trimmed."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_TASK_ID
        and value.isprintable()
        and value.strip() == value
    )


def progress_of(value: object) -> int | None:
    """A 0 to 100 progress figure from a number or numeric string; ``None`` if there is none."""
    if isinstance(value, str):
        try:
            value = float(value.strip().rstrip("%"))
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    number = int(value)
    return number if 0 <= number <= 100 else None


def _json_object(content: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(content)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


async def _read_capped(response: httpx.Response) -> bytes | None:
    """The body, or ``None`` past ``MAX_BODY`` bytes: no provider answer we expect comes near,
    and a runaway one should not fill our memory."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _plain(response: httpx.Response, content: bytes | None) -> str | None:
    """A short text body (a proxy's "Bad Gateway") is worth quoting; HTML and blobs are not."""
    if content is None or not response.headers.get("content-type", "").startswith("text/plain"):
        return None
    text = content[:200].decode("utf-8", "replace").strip()
    return text or None


def _clean(message: str, config: ProviderConfig) -> str:
    return readable(message, (config.api_key, config.webhook_key))
