"""``GET /metrics``: Prometheus text, no API key (like ``/healthz``).

The database gauges are read fresh for each scrape, through indexes (``store.ops_queries``), and
rendered together with this process's counters; nothing is cached between scrapes, so two
scrapes never disagree about what the database held when each ran.
"""

from __future__ import annotations

from typing import cast

from starlette.requests import Request
from starlette.responses import Response

from service.metrics import CONTENT_TYPE, Metrics
from service.web.context import services


def app_metrics(request: Request) -> Metrics:
    """The registry ``create_app`` made for this app."""
    return cast(Metrics, request.app.state.metrics)


async def metrics(request: Request) -> Response:
    """Tasks by status, callbacks by outcome, deliveries by status, the delivery queue, and the
    attempts and latency this process observed."""
    svc = services(request)
    now = svc.clock()
    counts = await svc.store.ops_counts(now)
    body = app_metrics(request).render(counts, now)
    return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})
