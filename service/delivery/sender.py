"""Sending one delivery attempt over the shared aiohttp session.

aiohttp, not httpx, on this hot path: on these machines ``httpx.AsyncClient`` tops out around
0.6-0.9k requests/s and slows as concurrency grows (encode/httpx#3215), where aiohttp's client
does several thousand. One long-lived session, its connector guarded against SSRF at connect
time; redirects are never followed, proxies from the environment are ignored and cookies are
never kept.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import aiohttp

from service.core.delivery import Outbound
from service.delivery.ssrf import TargetPolicy, UnsafeTarget, check_url, guarded_session
from service.settings import DeliverySettings

_VERDICTS_KEPT = 4096


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    latency_ms: int
    response_excerpt: str
    error: str | None
    retry_after_s: float | None = None


def retry_after(value: str | None, now_s: float) -> float | None:
    """``Retry-After`` in seconds, from delta-seconds or an HTTP date; ``None`` if unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now_s)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


class Sender:
    def __init__(self, settings: DeliverySettings, policy: TargetPolicy) -> None:
        self._settings = settings
        self._policy = policy
        self._session: aiohttp.ClientSession | None = None
        #: ``check_url``'s verdict per URL (``None``: safe): the policy is fixed for the
        #: sender's life and the same few URLs come round on every delivery
        self._verdicts: dict[str, UnsafeTarget | None] = {}

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            # Per *endpoint* limits are the worker's (guarded_session has no per-host limit:
            # it would make every endpoint on one host:port share a single endpoint's share).
            self._session = guarded_session(
                self._policy,
                limit=self._settings.concurrency,
                timeout_s=self._settings.request_timeout_seconds,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _check(self, url: str) -> None:
        if url not in self._verdicts:
            if len(self._verdicts) >= _VERDICTS_KEPT:
                self._verdicts.clear()
            try:
                check_url(url, self._policy)
                self._verdicts[url] = None
            except UnsafeTarget as exc:
                self._verdicts[url] = exc
        refused = self._verdicts[url]
        if refused is not None:
            raise UnsafeTarget(refused.message)

    async def send(self, url: str, out: Outbound) -> AttemptResult:
        """POST once; every outcome, including an exception, becomes an ``AttemptResult``."""
        started = time.perf_counter()

        def elapsed() -> int:
            return round((time.perf_counter() - started) * 1000)

        try:
            self._check(url)  # IP literals never reach the guarded resolver
            async with self._open().post(
                url, data=out.body, headers=out.headers, allow_redirects=False
            ) as response:
                excerpt = await response.content.read(self._settings.response_excerpt_bytes)
                return AttemptResult(
                    status_code=response.status,
                    latency_ms=elapsed(),
                    response_excerpt=excerpt.decode("utf-8", errors="replace"),
                    error=None,
                    retry_after_s=retry_after(response.headers.get("retry-after"), time.time()),
                )
        except UnsafeTarget as exc:
            return AttemptResult(None, elapsed(), "", f"refused target: {exc.message}")
        except TimeoutError:
            return AttemptResult(None, elapsed(), "", "timed out")
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
            return AttemptResult(None, elapsed(), "", f"{type(exc).__name__}: {exc}"[:500])
