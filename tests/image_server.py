"""A provider's image host, for the mirror to download from: real PNG/JPEG/WebP files over
loopback HTTP, and the ways such hosts fail.

Runs uvicorn in a thread of its own (so one server can serve a whole session, whatever event
loop each test has). Paths:

- ``/img/{name}.{png|jpeg|webp}?w=&h=`` — an image of that size, the same bytes for the same
  name and size (``image_bytes``)
- ``/status/{code}/{name}.png`` — answers ``code`` (``Retry-After: 1`` on 429/503)
- ``/flaky/{n}/{name}.png`` — 500 for the first ``n`` requests of that name, then the image
- ``/slow/{ms}/{name}.png`` — the image, after ``ms`` milliseconds
- ``/once/{name}.png`` — the image once, then 404: a provider's link that has expired
- ``/html/{name}.png`` — an HTML error page with 200
- ``/huge/{name}.png`` — a PNG header then 4 MiB more, without a Content-Length
- ``/redirect/{name}.png`` — 302 to ``/img/{name}.png``
"""

from __future__ import annotations

import asyncio
import atexit
import io
import threading
from collections import Counter
from collections.abc import AsyncIterator
from functools import lru_cache

import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.servers import bind_loopback

FORMATS = {
    "png": ("PNG", "image/png"),
    "jpeg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
}


@lru_cache(maxsize=256)
def image_bytes(name: str, ext: str = "png", width: int = 64, height: int = 48) -> bytes:
    """A deterministic image: its colour comes from ``name``."""
    seed = sum(name.encode()) % 256
    image = Image.new("RGB", (width, height), (seed, 255 - seed, (seed * 7) % 256))
    for x in range(0, width, 7):
        image.putpixel((x, x * height // max(width, 1) % height), (255, 255, 255))
    out = io.BytesIO()
    fmt, _ = FORMATS[ext]
    image.save(out, format=fmt)
    return out.getvalue()


class ImageServer:
    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self._sock = bind_loopback()
        self.base = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._server = uvicorn.Server(
            uvicorn.Config(
                self._app(), log_config=None, access_log=False, lifespan="off",
                loop="asyncio", http="h11",
            )
        )  # fmt: skip
        self._thread = threading.Thread(target=self._run, daemon=True, name="image-server")

    def url(self, name: str, ext: str = "png", *, width: int = 64, height: int = 48) -> str:
        return f"{self.base}/img/{name}.{ext}?w={width}&h={height}"

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def start(self) -> ImageServer:
        self._thread.start()
        for _ in range(500):
            if self._server.started:
                return self
            threading.Event().wait(0.01)
        raise RuntimeError("image server did not start")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()

    def _app(self) -> Starlette:
        def image(request: Request, name: str) -> Response:
            ext = request.path_params.get("ext", "png")
            width = int(request.query_params.get("w", "64"))
            height = int(request.query_params.get("h", "48"))
            return Response(image_bytes(name, ext, width, height), media_type=FORMATS[ext][1])

        async def img(request: Request) -> Response:
            self.hits[request.url.path] += 1
            return image(request, request.path_params["name"])

        async def status(request: Request) -> Response:
            self.hits[request.url.path] += 1
            code = int(request.path_params["code"])
            headers = {"Retry-After": "1"} if code in (429, 503) else {}
            return Response(b"no", status_code=code, headers=headers)

        async def flaky(request: Request) -> Response:
            name = request.path_params["name"]
            self.hits[name] += 1
            if self.hits[name] <= int(request.path_params["n"]):
                return Response(b"busy", status_code=500)
            return image(request, name)

        async def once(request: Request) -> Response:
            name = request.path_params["name"]
            self.hits["once:" + name] += 1
            if self.hits["once:" + name] > 1:
                return Response(b"expired", status_code=404)
            return image(request, name)

        async def slow(request: Request) -> Response:
            self.hits[request.url.path] += 1
            await asyncio.sleep(int(request.path_params["ms"]) / 1000)
            return image(request, request.path_params["name"])

        async def html(request: Request) -> Response:
            return Response(b"<html><body>Not found</body></html>", media_type="text/html")

        async def huge(request: Request) -> Response:
            async def endless() -> AsyncIterator[bytes]:
                yield image_bytes("huge")[:64]
                for _ in range(64):  # 4 MiB, past any test's cap, then it ends
                    yield b"\0" * 65536
                    await asyncio.sleep(0)

            return StreamingResponse(endless(), media_type="image/png")

        async def redirect(request: Request) -> Response:
            return RedirectResponse(f"/img/{request.path_params['name']}.png", status_code=302)

        return Starlette(
            routes=[
                Route("/img/{name}.{ext:str}", img),
                Route("/status/{code:int}/{name}.png", status),
                Route("/flaky/{n:int}/{name}.png", flaky),
                Route("/slow/{ms:int}/{name}.png", slow),
                Route("/once/{name}.png", once),
                Route("/html/{name}.png", html),
                Route("/huge/{name}.png", huge),
                Route("/redirect/{name}.png", redirect),
            ]
        )


_SHARED: list[ImageServer] = []


def shared() -> ImageServer:
    """The one image server of this test process, started on first use (module-level helpers
    that build provider callbacks name its URLs before any fixture runs)."""
    if not _SHARED:
        server = ImageServer().start()
        atexit.register(server.stop)
        _SHARED.append(server)
    return _SHARED[0]
