"""The subscriber side: a receiver that answers 204 as cheaply as Python can.

A raw ASGI app (no framework) under uvicorn with uvloop and httptools, so the receiver is never
what limits a delivery benchmark. It listens on several ports at once: the delivery worker's
``per_endpoint_concurrency`` is enforced by aiohttp's ``limit_per_host``, which counts per
host:port, so endpoints on distinct ports are what lets the worker use its full ``concurrency``.

Two uses. As a process (``python -m tools.bench.receiver --ports 8101,8102``) it only counts,
and ``GET /_stats`` says how many POSTs arrived, when the first and last did, and how many
carried a ``webhook-id`` that had already arrived on that port (a delivery sent twice);
``GET /_reset`` forgets the ids seen (before a new copy of the same backlog). In-process
(``Receiver(record=True)``, scenario 3) it also keeps each request's arrival time, headers and
body, so the load generator that sent the callbacks, on the same clock, can compute end-to-end
latency and verify every signature afterwards — not while requests are arriving.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time
from dataclasses import dataclass, field

import uvicorn
from starlette.types import Message, Receive, Scope, Send

_NO_CONTENT: Message = {"type": "http.response.start", "status": 204, "headers": []}
_EMPTY: Message = {"type": "http.response.body", "body": b""}


@dataclass(frozen=True)
class Arrival:
    at: float  # time.perf_counter() when the whole body was in
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    record: bool = False
    count: int = 0
    first: float = 0.0  # time.time() of the first and last POST
    last: float = 0.0
    arrivals: list[Arrival] = field(default_factory=list)
    #: (port, webhook-id) of every POST so far, and how many arrived a second time: two
    #: workers must never both send one delivery while its lease holds
    seen: set[tuple[int, str]] = field(default_factory=set)
    duplicates: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "POST":
            chunks = []
            while True:
                message = await receive()
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            now = time.time()
            webhook_id = next((v for k, v in scope["headers"] if k == b"webhook-id"), b"")
            key = (scope["server"][1] if scope.get("server") else 0, webhook_id.decode("latin-1"))
            if key in self.seen:
                self.duplicates += 1
            else:
                self.seen.add(key)
            if self.record:
                headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
                self.arrivals.append(Arrival(time.perf_counter(), headers, b"".join(chunks)))
            self.count += 1
            self.first = self.first or now
            self.last = now
            await send(_NO_CONTENT)
            await send(_EMPTY)
            return
        if scope["path"] == "/_reset":  # a new backlog with the same ids follows
            self.seen.clear()
            self.duplicates = 0
        body = json.dumps({"count": self.count, "first": self.first, "last": self.last,
                           "duplicates": self.duplicates}).encode()  # fmt: skip
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def bind(port: int = 0) -> socket.socket:
    """A listening socket on 127.0.0.1 (``port`` 0: any free one). IPPROTO_TCP given so that
    asyncio sets TCP_NODELAY on accepted connections."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def server(app: Receiver) -> uvicorn.Server:
    return uvicorn.Server(
        uvicorn.Config(
            app,
            loop="uvloop",
            http="httptools",
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
            date_header=False,
            backlog=4096,
        )
    )


async def serve_in_process(
    app: Receiver, sock: socket.socket
) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    """Serve ``app`` on ``sock`` inside the running loop; stop with ``server.should_exit``."""
    srv = server(app)
    task = asyncio.create_task(srv.serve(sockets=[sock]))
    while not srv.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return srv, task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ports", required=True, help="comma-separated ports to listen on")
    args = parser.parse_args()
    sockets = [bind(int(port)) for port in args.ports.split(",")]
    server(Receiver()).run(sockets=sockets)


if __name__ == "__main__":
    main()
