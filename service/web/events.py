"""``/v1/events``, the delivery history (``/v1/endpoints/{id}/deliveries``,
``/v1/deliveries/{id}/attempts``) and replays (``/v1/events/{id}/replay``,
``/v1/endpoints/{id}/recover``). Handlers parse, call ``service.events`` / ``service.replay`` and
render; a replay that queued deliveries wakes the delivery loop once its transaction is done."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service import events, replay
from service.core.pagination import decode_cursor, page_request, parse_limit
from service.errors import UnsupportedMediaType
from service.events import attempt_object, delivery_object, event_object
from service.web.bodies import parse_json, read_body, read_json
from service.web.context import caller, page_response


def _path(request: Request, name: str) -> str:
    value: str = request.path_params[name]
    return value


async def _optional_json(request: Request, max_bytes: int) -> Any:
    """A body that may be left out altogether (``None``); one that is sent must be JSON."""
    raw = await read_body(request, max_bytes)
    if not raw:
        return None
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType("Send the body as application/json.")
    return parse_json(raw)


async def list_events(request: Request) -> Response:
    svc, who = await caller(request)
    query = request.query_params
    page = page_request(query.get("limit"), query.get("cursor"), "evt")
    where = events.parse_event_filter(query)
    found = await events.list_events(svc.store, who.account_id, where, page)
    return page_response([event_object(e) for e in found], [e.id for e in found], page.limit)


async def get_event(request: Request) -> Response:
    svc, who = await caller(request)
    event = await events.get_event(svc.store, who.account_id, _path(request, "event_id"))
    return JSONResponse(event_object(event))


async def event_deliveries(request: Request) -> Response:
    svc, who = await caller(request)
    query = request.query_params
    page = page_request(query.get("limit"), query.get("cursor"), "dlv")
    found = await events.event_deliveries(
        svc.store, who.account_id, _path(request, "event_id"), page
    )
    return page_response([delivery_object(d) for d in found], [d.id for d in found], page.limit)


async def endpoint_deliveries(request: Request) -> Response:
    svc, who = await caller(request)
    query = request.query_params
    page = page_request(query.get("limit"), query.get("cursor"), "dlv")
    status = events.parse_delivery_status(query.get("status"))
    found = await events.endpoint_deliveries(
        svc.store, who.account_id, _path(request, "endpoint_id"), status, page
    )
    return page_response([delivery_object(d) for d in found], [d.id for d in found], page.limit)


async def delivery_attempts(request: Request) -> Response:
    svc, who = await caller(request)
    query = request.query_params
    limit, after = parse_limit(query.get("limit")), decode_cursor(query.get("cursor"), "att")
    found = await events.delivery_attempts(
        svc.store, who.account_id, _path(request, "delivery_id"), after, limit
    )
    return page_response([attempt_object(a) for a in found], [a.id for a in found], limit)


async def replay_event(request: Request) -> Response:
    svc, who = await caller(request)
    body = await _optional_json(request, svc.settings.api.max_body_bytes)
    replayed = await replay.replay_event(
        svc.store,
        svc.clock,
        account_id=who.account_id,
        event_id=_path(request, "event_id"),
        endpoint_id=replay.parse_replay(body),
    )
    if replayed.deliveries:
        svc.waker.wake_delivery()
    return JSONResponse(
        {
            "event_id": replayed.event.id,
            "deliveries": [delivery_object(d) for d in replayed.deliveries],
        },
        status_code=202,
    )


async def recover_endpoint(request: Request) -> Response:
    svc, who = await caller(request)
    body = await read_json(request, svc.settings.api.max_body_bytes)
    recovered = await replay.recover_endpoint(
        svc.store,
        svc.clock,
        account_id=who.account_id,
        endpoint_id=_path(request, "endpoint_id"),
        request=replay.parse_recover(body),
    )
    if recovered.dry_run:
        return JSONResponse({"count": recovered.count, "dry_run": True})
    if recovered.deliveries:
        svc.waker.wake_delivery()
    return JSONResponse(
        {
            "count": recovered.count,
            "deliveries": [delivery_object(d) for d in recovered.deliveries],
        },
        status_code=202,
    )
