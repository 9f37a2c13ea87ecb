"""What every route handler reaches for: the wired services of this app instance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import JSONResponse

from service.core.clock import Clock
from service.core.pagination import next_cursor
from service.endpoints import EndpointPolicy
from service.settings import Settings
from service.store.base import Store
from service.upstream import Upstream
from service.usecases import TaskPolicy
from service.web.auth import Principal, authenticate
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


def services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


async def caller(request: Request) -> tuple[Services, Principal]:
    """The services and the authenticated caller: the first line of every /v1 handler."""
    svc = services(request)
    return svc, await authenticate(request, svc.store)


def page_response(items: list[Any], ids: list[str], limit: int) -> JSONResponse:
    """``{"data": [...], "next_cursor": ...}`` from a page fetched with ``limit + 1`` rows."""
    return JSONResponse({"data": items[:limit], "next_cursor": next_cursor(ids, limit)})
