"""``/v1/moderation/decisions``: the screening decision log, newest first. A key sees its own
account's decisions; an admin key sees every account's."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.core.pagination import page_request
from service.moderation.decisions import decision_object, list_decisions, parse_decision_filter
from service.web.context import caller, page_response


async def list_moderation_decisions(request: Request) -> Response:
    svc, who = await caller(request)
    query = request.query_params
    page = page_request(query.get("limit"), query.get("cursor"), "mod")
    where = parse_decision_filter(query, who.account_id, who.is_admin)
    found = await list_decisions(svc.store, where, page)
    return page_response([decision_object(d) for d in found], [d.id for d in found], page.limit)
