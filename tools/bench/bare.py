"""The bare server ingest is compared with: one Starlette route that reads the body and answers 200.

It is served exactly as ``python -m service serve`` serves taskhook (uvicorn, uvloop, httptools,
one process, no access log, lifespan on, no server header), on the same route shape, so the ratio
ingest / bare is the share of the HTTP stack's ceiling that taskhook's own work leaves.

Run: ``python -m tools.bench.bare --port N``.
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

#: taskhook's callback route, which both baselines answer on
CALLBACK_PATH = "/callbacks/{provider}/{token}"


async def callback(request: Request) -> Response:
    await request.body()
    return Response(status_code=200)


async def healthz(_request: Request) -> Response:
    return Response(b"ok", media_type="text/plain")


def create_app() -> Starlette:
    return Starlette(
        routes=[
            Route(CALLBACK_PATH, callback, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    run_server(create_app(), args.port)


def run_server(app: ASGIApp, port: int) -> None:
    """Serve ``app`` with the settings ``python -m service serve`` uses."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        lifespan="on",
        server_header=False,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
