"""The second moderation stage: an OpenAI-compatible moderation API.

One ``POST`` to ``TASKHOOK_MODERATION_URL`` with ``{"input": prompt, "model": …}`` and the key
as a bearer token; the answer is ``{"results": [{"flagged": bool, "categories": {name: bool},
…}]}``. A flagged prompt is blocked under the taskhook category of its most severe flagged
name (see ``OPENAI_CATEGORIES``), and the names themselves are kept as the decision's rule.

The stage runs on the submit path, after the rules allowed the prompt and before the charge, so
one deadline bounds the whole exchange (``timeout_seconds``), not each phase of it. When the
stage fails (no connection, the deadline, any status but 2xx, a body not of that shape) there
is no verdict on the content, and ``on_error`` decides: ``block`` refuses the prompt, ``allow``
lets the rules' verdict stand. Either way the failure is logged, without the prompt or the key,
and kept on the decision. Nothing is retried: a retry would spend the caller's wait twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from service.logs import get_logger
from service.settings import ExternalModerationSettings

log = get_logger("taskhook.moderation")

#: OpenAI's category names (omni-moderation) and the taskhook category each stands for. Self-harm
#: is ``abuse``, as in the rules (``abuse-self-harm``).
OPENAI_CATEGORIES: Mapping[str, str] = {
    "sexual/minors": "sexual_minors",
    "sexual": "sexual",
    "violence": "violence",
    "violence/graphic": "violence",
    "illicit": "illegal_activity",
    "illicit/violent": "illegal_activity",
    "harassment": "abuse",
    "harassment/threatening": "abuse",
    "hate": "abuse",
    "hate/threatening": "abuse",
    "self-harm": "abuse",
    "self-harm/intent": "abuse",
    "self-harm/instructions": "abuse",
}
#: most severe first, as the rules are ordered: the category reported when several are flagged
SEVERITY = ("sexual_minors", "sexual", "violence", "illegal_activity", "abuse")
#: for a flagged prompt whose names are all unknown to us: "otherwise prohibited content"
FALLBACK_CATEGORY = "abuse"
#: an answer for one input is a few hundred bytes; a runaway one must not fill our memory
MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class ExternalVerdict:
    """The stage's verdict: the API's, or ``on_error``'s when the API gave none (``error``)."""

    allowed: bool
    #: the API's flagged category names, sorted and comma-separated; ``None`` if none were
    flagged: str | None = None
    category: str | None = None
    error: str | None = None


def flagged_names(content: bytes) -> tuple[bool, tuple[str, ...]] | None:
    """Whether an answer flags its input, and the names it flags; ``None`` if the body is not a
    moderation answer. Every result counts (we send one input, but a list is a list), and a
    category marked true blocks even where ``flagged`` says otherwise."""
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        return None
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list) or not results:
        return None
    flagged, names = False, set[str]()
    for result in results:
        if not isinstance(result, dict) or not isinstance(result.get("flagged"), bool):
            return None
        categories = result.get("categories", {})
        if not isinstance(categories, dict):
            return None
        flagged = flagged or result["flagged"]
        names.update(str(name) for name, on in categories.items() if on is True)
    return flagged or bool(names), tuple(sorted(names))


def verdict_for(flagged: bool, names: tuple[str, ...]) -> ExternalVerdict:
    if not flagged:
        return ExternalVerdict(allowed=True)
    ours = {OPENAI_CATEGORIES[name] for name in names if name in OPENAI_CATEGORIES}
    category = next((c for c in SEVERITY if c in ours), FALLBACK_CATEGORY)
    # cut so that a service inventing long names cannot bloat the log
    return ExternalVerdict(
        allowed=False, flagged=",".join(names)[:500] or "flagged", category=category
    )


class ExternalModeration:
    """The stage, over the app's shared client (no redirects, no proxies from the environment:
    following a redirect could send the key elsewhere)."""

    def __init__(self, settings: ExternalModerationSettings, client: httpx.AsyncClient) -> None:
        if settings.url is None:
            raise ValueError("the external moderation stage needs a URL")
        self._url = settings.url
        self._settings = settings
        self._client = client
        self._headers = {"Accept": "application/json"}
        if settings.api_key is not None:
            self._headers["Authorization"] = f"Bearer {settings.api_key.reveal()}"

    async def check(self, prompt: str) -> ExternalVerdict:
        body: dict[str, Any] = {"input": prompt}
        if self._settings.model:
            body["model"] = self._settings.model
        started = time.perf_counter()
        status: int | None = None
        content: bytes | None = None
        try:
            async with asyncio.timeout(self._settings.timeout_seconds):
                async with self._client.stream(
                    "POST",
                    self._url,
                    json=body,
                    headers=self._headers,
                    timeout=self._settings.timeout_seconds,
                    follow_redirects=False,
                ) as response:
                    status = response.status_code
                    content = await _read_capped(response) if 200 <= status < 300 else None
        except (TimeoutError, httpx.TimeoutException):
            return self._failed("timeout", status, started)
        except (httpx.HTTPError, httpx.InvalidURL):
            return self._failed("unreachable", status, started)
        if status is None or not 200 <= status < 300:
            return self._failed(f"http_{status}", status, started)
        answer = flagged_names(content) if content is not None else None
        if answer is None:
            return self._failed("bad_response", status, started)
        return verdict_for(*answer)

    def _failed(self, error: str, status: int | None, started: float) -> ExternalVerdict:
        allowed = self._settings.on_error == "allow"
        log.warning(
            "moderation.external_failed",
            error=error,
            status=status,
            elapsed_ms=round((time.perf_counter() - started) * 1000),
            on_error=self._settings.on_error,
        )
        return ExternalVerdict(allowed=allowed, error=error)


async def _read_capped(response: httpx.Response) -> bytes | None:
    """The body, or ``None`` past ``MAX_BODY`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
