"""The route table: one line per route, so the surface can be read in one place."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.web import (
    account,
    assets,
    callbacks,
    endpoints,
    events,
    metrics,
    moderation,
    ops,
    tasks,
)
from service.web.openapi import openapi_json

Handler = Callable[[Request], Awaitable[Response]]


def route(path: str, **handlers: Handler) -> Route:
    """One route per path, dispatching on the method, so a 405's ``Allow`` lists every method."""

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return Route(path, endpoint, methods=list(handlers), name=path)


ROUTES = [
    # First: the router tries each pattern in turn, and providers' callbacks are most of the
    # traffic (about 8 µs a request saved; no other path starts with /callbacks/).
    Route("/callbacks/{provider}/{token}", callbacks.receive, methods=["POST"]),
    Route("/assets/{asset_id}", assets.serve_asset, methods=["GET", "HEAD"]),
    Route("/healthz", ops.healthz, methods=["GET"]),
    Route("/readyz", ops.readyz, methods=["GET"]),
    Route("/metrics", metrics.metrics, methods=["GET"]),
    Route("/openapi.json", openapi_json, methods=["GET"]),
    route("/v1/tasks", GET=tasks.list_tasks, POST=tasks.create_task),
    Route("/v1/tasks/{task_id}", tasks.get_task, methods=["GET"]),
    Route("/v1/tasks/{task_id}/timeline", tasks.task_timeline, methods=["GET"]),
    Route("/v1/tasks/{task_id}/results/{index}", assets.task_result, methods=["GET"]),
    Route("/v1/uploads", assets.upload, methods=["POST"]),
    Route("/v1/account", account.get_account, methods=["GET"]),
    Route("/v1/account/ledger", account.list_ledger, methods=["GET"]),
    Route("/v1/callbacks", callbacks.list_callbacks, methods=["GET"]),
    Route("/v1/callbacks/{callback_id}/replay", callbacks.replay, methods=["POST"]),
    route("/v1/endpoints", GET=endpoints.list_endpoints, POST=endpoints.create_endpoint),
    route(
        "/v1/endpoints/{endpoint_id}",
        GET=endpoints.get_endpoint,
        PATCH=endpoints.update_endpoint,
        DELETE=endpoints.delete_endpoint,
    ),
    Route("/v1/endpoints/{endpoint_id}/rotate-secret", endpoints.rotate_secret, methods=["POST"]),
    Route("/v1/endpoints/{endpoint_id}/test", endpoints.send_test, methods=["POST"]),
    Route("/v1/endpoints/{endpoint_id}/deliveries", events.endpoint_deliveries, methods=["GET"]),
    Route("/v1/endpoints/{endpoint_id}/recover", events.recover_endpoint, methods=["POST"]),
    Route("/v1/events", events.list_events, methods=["GET"]),
    Route("/v1/events/{event_id}", events.get_event, methods=["GET"]),
    Route("/v1/events/{event_id}/deliveries", events.event_deliveries, methods=["GET"]),
    Route("/v1/events/{event_id}/replay", events.replay_event, methods=["POST"]),
    Route("/v1/deliveries/{delivery_id}/attempts", events.delivery_attempts, methods=["GET"]),
    Route("/v1/moderation/decisions", moderation.list_moderation_decisions, methods=["GET"]),
]
