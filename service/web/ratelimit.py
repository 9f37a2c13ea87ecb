"""Per-API-key request limits on ``/v1``, counted by the ``limits`` library.

``[api] rate_limit`` requests a second on average and ``rate_limit_burst`` at once are one
library limit: *burst* requests per *burst ÷ rate* seconds, under the sliding-window-counter
strategy. That strategy keeps two counters per key (this window's and the last one's) and
weighs the last one by how much of it still overlaps the sliding window, so after a burst the
budget comes back gradually, at ``rate`` a second, as a token bucket's would; the fixed window
would instead allow two bursts back to back at a window's edge, and the moving window keeps a
timestamp per request (``burst`` entries per key, and a thread hop per key to expire them in
the library's memory storage).

The counts live in this process's memory, or in Redis when ``rate_limit_storage`` names it (then
every process sharing that Redis shares each key's budget). A Redis that cannot be reached
lets requests through: the limit protects the service from one key's excess, and refusing
every request because a counter is out of reach would be the bigger outage.

``caller()`` (``service.web.context``) hits the limit right after authentication and leaves the
key's quota on the request; :class:`RateLimitHeaders` writes it into the answer, whatever the
answer is (an error as well), as the ``RateLimit-*`` fields of the IETF draft.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import redis.asyncio
from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.logs import get_logger
from service.settings import ApiSettings

log = get_logger("taskhook.ratelimit")

#: where ``caller()`` leaves the quota, in the request's ``scope["state"]``
STATE_KEY = "rate_limit"
#: a Redis that does not answer within this long is treated as down for that request
REDIS_TIMEOUT_S = 0.25
#: while the storage keeps failing, one warning per this many seconds
WARN_EVERY_S = 60.0


@dataclass(frozen=True)
class Quota:
    """One key's budget just after a request was counted (or refused)."""

    allowed: bool
    #: requests allowed at once: the burst
    limit: int
    remaining: int
    #: about how many seconds until the limiter frees a request again: the library's estimate
    #: (0: nothing to wait for)
    reset_s: int
    window_s: int

    @property
    def retry_after(self) -> int:
        """``Retry-After`` for a refusal: whole seconds, at least 1."""
        return max(1, self.reset_s)

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset_s).encode()),
            (b"ratelimit-policy", f"{self.limit};w={self.window_s}".encode()),
        ]


class KeyLimiter:
    """The limit of ``[api] rate_limit`` for each API key, over the configured storage."""

    def __init__(self, api: ApiSettings) -> None:
        self._item = RateLimitItemPerSecond(api.rate_limit_burst, api.rate_limit_window_seconds)
        self._pool: redis.asyncio.ConnectionPool | None = None
        self.storage: Storage
        if api.rate_limit_storage:
            # Our own pool, so that we can close it; the library builds its client on it.
            url = api.rate_limit_storage.replace("redis+unix://", "unix://", 1)
            self._pool = redis.asyncio.ConnectionPool.from_url(
                url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
            )
            storage = storage_from_string(
                f"async+{api.rate_limit_storage}",
                implementation="redispy",
                key_prefix=api.rate_limit_prefix,
                wrap_exceptions=True,
                connection_pool=self._pool,  # type: ignore[arg-type]
            )
            assert isinstance(storage, Storage)
            self.storage = storage
        else:
            self.storage = MemoryStorage(wrap_exceptions=True)
        self._strategy = SlidingWindowCounterRateLimiter(self.storage)
        self._warned_at = -math.inf

    @classmethod
    def from_settings(cls, api: ApiSettings) -> KeyLimiter | None:
        """The limiter ``api`` describes, or ``None`` when ``rate_limit`` is 0 (no limit)."""
        return cls(api) if api.rate_limit else None

    async def hit(self, key_id: str) -> Quota | None:
        """Count one request of ``key_id``; ``None`` when the storage failed (let through)."""
        try:
            allowed = await self._strategy.hit(self._item, key_id)
            stats = await self._strategy.get_window_stats(self._item, key_id)
        except StorageError as exc:
            now = time.monotonic()
            if now - self._warned_at >= WARN_EVERY_S:
                self._warned_at = now
                log.warning("ratelimit.storage_failed", error=repr(exc.storage_error))
            return None
        return Quota(
            allowed=allowed,
            limit=self._item.amount,
            remaining=stats.remaining,
            reset_s=max(0, math.ceil(stats.reset_time - time.time())),
            window_s=self._item.get_expiry(),
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
        elif isinstance(self.storage, MemoryStorage) and self.storage.timer is not None:
            await self.storage.timer  # its expiry sweep: a moment's work, never left pending


class RateLimitHeaders:
    """Adds the quota ``caller()`` left on the request to the response's headers.

    A pure ASGI middleware (not ``BaseHTTPMiddleware``), inside which the exception handlers
    run, so error answers get the headers too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Made here, before the request object is, so that the handler writes into this dict.
        state = scope.setdefault("state", {})

        async def send_with_quota(message: Message) -> None:
            if message["type"] == "http.response.start":
                quota = state.get(STATE_KEY)
                if isinstance(quota, Quota):
                    message["headers"] = [*message.get("headers", []), *quota.headers()]
            await send(message)

        await self.app(scope, receive, send_with_quota)
