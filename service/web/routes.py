"""The route table: one line per route, so the surface can be read in one place."""

from __future__ import annotations

from starlette.routing import Route

from service.web import account, ops, tasks
from service.web.openapi import openapi_json

ROUTES = [
    Route("/healthz", ops.healthz, methods=["GET"]),
    Route("/readyz", ops.readyz, methods=["GET"]),
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/v1/tasks", tasks.create_task, methods=["POST"]),
    Route("/v1/tasks", tasks.list_tasks, methods=["GET"]),
    Route("/v1/tasks/{task_id}", tasks.get_task, methods=["GET"]),
    Route("/v1/tasks/{task_id}/timeline", tasks.task_timeline, methods=["GET"]),
    Route("/v1/account", account.get_account, methods=["GET"]),
    Route("/v1/account/ledger", account.list_ledger, methods=["GET"]),
]
