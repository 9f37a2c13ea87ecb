"""``/callbacks/{provider}/{token}`` (providers → us) and ``/v1/callbacks`` (the inbound log)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service import inbound
from service.core.clock import to_rfc3339
from service.core.pagination import page_request
from service.store.base import CallbackRecord
from service.upstream import body_preview
from service.web.bodies import read_body
from service.web.context import caller, page_response, services


def callback_object(record: CallbackRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "task_id": record.task_id,
        "provider": record.provider,
        "provider_task_id": record.provider_task_id,
        "verdict": record.verdict,
        "outcome": record.outcome,
        "detail": record.detail,
        "headers": record.headers,
        "body": body_preview(record.body),
        "received_at": to_rfc3339(record.received_at),
        "applied_at": to_rfc3339(record.applied_at) if record.applied_at is not None else None,
    }


async def receive(request: Request) -> Response:
    svc = services(request)
    body = await read_body(request, svc.settings.api.max_body_bytes)
    record = await inbound.receive_callback(
        svc.upstream,
        request.path_params["provider"],
        request.path_params["token"],
        request.headers.items(),
        body,
    )
    return JSONResponse({"id": record.id, "outcome": record.outcome})


async def list_callbacks(request: Request) -> Response:
    svc, who = await caller(request)
    query = request.query_params
    page = page_request(query.get("limit"), query.get("cursor"), "cb")
    records = await svc.store.list_callbacks(who.account_id, query.get("task_id"), page)
    return page_response([callback_object(r) for r in records], [r.id for r in records], page.limit)


async def replay(request: Request) -> Response:
    svc, who = await caller(request)
    record = await inbound.replay_callback(
        svc.upstream, who.account_id, request.path_params["callback_id"]
    )
    return JSONResponse(callback_object(record))
