"""What every route handler reaches for: the wired services of this app instance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import JSONResponse

from service.assets.keeper import Assets
from service.core.clock import Clock
from service.core.pagination import next_cursor
from service.endpoints import EndpointPolicy
from service.errors import RateLimited
from service.settings import Settings
from service.store.base import Store
from service.upstream import Upstream
from service.usecases import TaskPolicy
from service.web.auth import Principal, authenticate
from service.web.ratelimit import STATE_KEY, KeyLimiter
from service.workers import Waker


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: Store
    clock: Clock
    policy: TaskPolicy
    upstream: Upstream
    #: after a commit that gave the loops work: ``wake()`` for a queued task,
    #: ``wake_delivery()`` for deliveries alone (a replay, a recovery, a ping)
    waker: Waker
    endpoints: EndpointPolicy
    #: the asset store, its signed links and the downloader (``service.assets``)
    assets: Assets
    #: per-API-key request limits (``None``: ``[api] rate_limit = 0``, no limit)
    limiter: KeyLimiter | None = None


def services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


async def caller(request: Request) -> tuple[Services, Principal]:
    """The services and the authenticated caller: the first line of every /v1 handler. The
    request counts against the key's rate limit here, refused or not, and the key's quota is
    left for ``RateLimitHeaders`` to put on the answer, whatever the handler answers."""
    svc = services(request)
    who = await authenticate(request, svc.store)
    if svc.limiter is not None:
        quota = await svc.limiter.hit(who.key_id)
        if quota is not None:
            request.scope.setdefault("state", {})[STATE_KEY] = quota
            if not quota.allowed:
                raise RateLimited(quota.retry_after)
    return svc, who


def page_response(items: list[Any], ids: list[str], limit: int) -> JSONResponse:
    """``{"data": [...], "next_cursor": ...}`` from a page fetched with ``limit + 1`` rows."""
    return JSONResponse({"data": items[:limit], "next_cursor": next_cursor(ids, limit)})
