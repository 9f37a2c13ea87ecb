"""``/v1/account``: who the key belongs to, the balance, and the credit ledger behind it."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service import usecases
from service.core.clock import to_rfc3339
from service.core.pagination import page_request
from service.web.context import caller, page_response


async def get_account(request: Request) -> Response:
    svc, who = await caller(request)
    account, balance = await usecases.get_account(svc.store, who.account_id)
    return JSONResponse({"id": account.id, "name": account.name, "balance_credits": balance})


async def list_ledger(request: Request) -> Response:
    svc, who = await caller(request)
    page = page_request(
        request.query_params.get("limit"), request.query_params.get("cursor"), "cred"
    )
    entries = await usecases.list_ledger(svc.store, who.account_id, page)
    items = [
        {
            "id": e.id,
            "kind": str(e.kind),
            "delta": e.delta,
            "task_id": e.task_id,
            "created_at": to_rfc3339(e.created_at),
        }
        for e in entries
    ]
    return page_response(items, [e.id for e in entries], page.limit)
