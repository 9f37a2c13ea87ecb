"""``/v1/tasks``: submit, read, list and trace image tasks."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service import usecases
from service.core.clock import parse_rfc3339
from service.core.ledger import TaskStatus
from service.core.pagination import page_request
from service.core.tasks import task_object
from service.core.timeline import timeline_object
from service.errors import MalformedRequest, ValidationFailed
from service.store.base import TaskFilter
from service.web.bodies import read_json
from service.web.context import caller, page_response


async def create_task(request: Request) -> Response:
    svc, who = await caller(request)
    body = await read_json(request, svc.settings.api.max_body_bytes)
    submitted = await usecases.submit_task(
        svc.store,
        svc.policy,
        svc.clock,
        account_id=who.account_id,
        key_id=who.key_id,
        body=body,
        idempotency_key=request.headers.get("idempotency-key"),
    )
    if not submitted.replayed:
        svc.waker.wake()
    headers = {"Location": f"/v1/tasks/{submitted.task.id}"}
    if submitted.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(
        task_object(submitted.task, svc.assets.links.url), status_code=202, headers=headers
    )


async def get_task(request: Request) -> Response:
    svc, who = await caller(request)
    task = await usecases.get_task(svc.store, who.account_id, request.path_params["task_id"])
    return JSONResponse(task_object(task, svc.assets.links.url))


async def list_tasks(request: Request) -> Response:
    svc, who = await caller(request)
    query = request.query_params
    page = page_request(query.get("limit"), query.get("cursor"), "task")
    status = query.get("status")
    if status is not None and status not in TaskStatus.__members__.values():
        raise ValidationFailed(f"status must be one of {', '.join(TaskStatus)}.", field="status")
    model = query.get("model")
    if model is not None and model not in svc.policy.pricing.models:
        raise ValidationFailed(
            f"model must be one of {', '.join(svc.policy.pricing.models)}.", field="model"
        )
    created_after = None
    if query.get("created_after") is not None:
        try:
            created_after = parse_rfc3339(query["created_after"])
        except ValueError:
            raise MalformedRequest(
                "created_after must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z.",
                field="created_after",
            ) from None
    where = TaskFilter(status=status, model=model, created_after=created_after)
    tasks = await usecases.list_tasks(svc.store, who.account_id, where, page)
    return page_response(
        [task_object(t, svc.assets.links.url) for t in tasks], [t.id for t in tasks], page.limit
    )


async def task_timeline(request: Request) -> Response:
    svc, who = await caller(request)
    entries = await usecases.task_timeline(
        svc.store, who.account_id, request.path_params["task_id"]
    )
    return JSONResponse({"data": [timeline_object(e) for e in entries], "next_cursor": None})
