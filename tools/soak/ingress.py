"""The soak's ingress: the one public address taskhook mints its URLs on.

taskhook builds callback URLs and the simulator's base URL from a single ``public_url``, as it
would behind a load balancer in production. Here that balancer is this small reverse proxy:
``/simulator/…`` goes to the simulator process, everything else to ``web``. So when ``web`` is
killed the simulator stays reachable, its callbacks to ``web`` fail (502) and are retried by the
simulator, and whatever it gives up on is left for the reconciler's polls to recover, which is
the recovery path the soak exists to exercise.

It also keeps what it saw of each provider callback (the token in the path, headers, body and
``web``'s answer): genuine material for the forged and replayed callbacks in ``forgery``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

#: not forwarded either way (RFC 9110 connection-specific fields, and what aiohttp recomputes)
_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
        "upgrade", "host", "content-length",
    }
)  # fmt: skip


@dataclass(frozen=True)
class SeenCallback:
    """One provider callback as it passed through: ``status`` is None when web did not answer."""

    provider: str
    token: str
    headers: dict[str, str]
    body: bytes
    status: int | None
    outcome: str | None
    at: float


@dataclass
class Ingress:
    web_url: str
    simulator_url: str
    callbacks: list[SeenCallback] = field(default_factory=list)
    #: answers by (route kind, status or "no answer")
    answers: Counter[tuple[str, str]] = field(default_factory=Counter)
    _session: aiohttp.ClientSession | None = None
    _runner: web.AppRunner | None = None

    async def start(self, port: int) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=30), auto_decompress=False, trust_env=False
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port, reuse_address=True).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        path = request.rel_url.raw_path
        if path.startswith("/simulator/"):
            kind, target = "simulator", self.simulator_url + path.removeprefix("/simulator")
        else:
            kind, target = ("callback" if path.startswith("/callbacks/") else "web"), self.web_url
            target += path
        if request.rel_url.raw_query_string:
            target += "?" + request.rel_url.raw_query_string
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        status: int | None = None
        reply: bytes = b""
        reply_headers: dict[str, str] = {}
        try:
            async with self._session.request(
                request.method, target, data=body, headers=headers, allow_redirects=False
            ) as upstream:
                status = upstream.status
                reply = await upstream.read()
                reply_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP}
        except (aiohttp.ClientError, TimeoutError, OSError):
            status = None
        self.answers[(kind, "no answer" if status is None else str(status))] += 1
        if kind == "callback":
            self._keep(path, dict(request.headers), body, status, reply)
        if status is None:
            return web.Response(status=502, text="bad gateway: upstream unreachable")
        return web.Response(status=status, body=reply, headers=reply_headers)

    def _keep(
        self, path: str, headers: dict[str, str], body: bytes, status: int | None, reply: bytes
    ) -> None:
        parts = path.split("/")  # "", "callbacks", provider, token
        if len(parts) != 4:
            return
        outcome = None
        if status is not None and 200 <= status < 300:
            try:
                outcome = str(json.loads(reply).get("outcome"))
            except (ValueError, AttributeError):
                outcome = None
        lowered = {k.lower(): v for k, v in headers.items()}
        self.callbacks.append(
            SeenCallback(parts[2], parts[3], lowered, body, status, outcome, time.time())
        )
