"""``/v1/endpoints``: where an account's webhooks go. The secret is shown on create and rotate
only; every other answer carries the endpoint object without it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service import endpoints
from service.core.endpoints import endpoint_object
from service.core.pagination import page_request
from service.web.bodies import read_json
from service.web.context import caller, page_response


def _endpoint_id(request: Request) -> str:
    value: str = request.path_params["endpoint_id"]
    return value


async def create_endpoint(request: Request) -> Response:
    svc, who = await caller(request)
    body = await read_json(request, svc.settings.api.max_body_bytes)
    endpoint = await endpoints.create_endpoint(
        svc.store, svc.endpoints, svc.clock, account_id=who.account_id, body=body
    )
    return JSONResponse(
        {**endpoint_object(endpoint), "secret": endpoint.secret},
        status_code=201,
        headers={"Location": f"/v1/endpoints/{endpoint.id}"},
    )


async def list_endpoints(request: Request) -> Response:
    svc, who = await caller(request)
    query = request.query_params
    page = page_request(query.get("limit"), query.get("cursor"), "ep")
    found = await endpoints.list_endpoints(svc.store, who.account_id, page)
    return page_response([endpoint_object(e) for e in found], [e.id for e in found], page.limit)


async def get_endpoint(request: Request) -> Response:
    svc, who = await caller(request)
    endpoint = await endpoints.get_endpoint(svc.store, who.account_id, _endpoint_id(request))
    return JSONResponse(endpoint_object(endpoint))


async def update_endpoint(request: Request) -> Response:
    svc, who = await caller(request)
    body = await read_json(request, svc.settings.api.max_body_bytes)
    endpoint = await endpoints.update_endpoint(
        svc.store,
        svc.endpoints,
        svc.clock,
        account_id=who.account_id,
        endpoint_id=_endpoint_id(request),
        body=body,
    )
    return JSONResponse(endpoint_object(endpoint))


async def delete_endpoint(request: Request) -> Response:
    svc, who = await caller(request)
    await endpoints.delete_endpoint(
        svc.store, svc.clock, account_id=who.account_id, endpoint_id=_endpoint_id(request)
    )
    return Response(status_code=204)


async def rotate_secret(request: Request) -> Response:
    svc, who = await caller(request)
    secret = await endpoints.rotate_secret(
        svc.store,
        svc.endpoints,
        svc.clock,
        account_id=who.account_id,
        endpoint_id=_endpoint_id(request),
    )
    return JSONResponse({"secret": secret})


async def send_test(request: Request) -> Response:
    svc, who = await caller(request)
    event = await endpoints.send_test(
        svc.store, svc.clock, account_id=who.account_id, endpoint_id=_endpoint_id(request)
    )
    svc.waker.wake_delivery()
    return JSONResponse({"id": event.id, "type": event.type}, status_code=202)
