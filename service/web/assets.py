"""``/assets/{id}`` (signed links, no API key), a task's result redirect, and uploads."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse

from service import usecases
from service.assets.store import AssetExpired, BlobMissing
from service.assets.uploads import create_upload
from service.core.assets import Asset, upload_object
from service.core.ranges import ByteRange, Unsatisfiable, parse_range
from service.errors import NotFound
from service.web.bodies import declared_length
from service.web.context import caller, services


def _etag(asset: Asset) -> str:
    return f'"{asset.sha256}"'


def _matches(header: str | None, etag: str) -> bool:
    if header is None:
        return False
    return header.strip() == "*" or etag in (
        t.strip().removeprefix("W/") for t in header.split(",")
    )


async def serve_asset(request: Request) -> Response:
    svc = services(request)
    asset_id = request.path_params["asset_id"]
    svc.assets.links.verify(
        asset_id, request.query_params.get("expires"), request.query_params.get("sig")
    )
    asset = await svc.store.get_asset(asset_id)
    if asset is None:
        raise NotFound("No such asset.", field="id")
    if asset.purged_at is not None:
        raise AssetExpired("The retention policy has removed this image's bytes.")
    etag = _etag(asset)
    headers = {
        "ETag": etag,
        "Cache-Control": "private, max-age=86400, immutable",
        "Accept-Ranges": "bytes",
        # the type is the one read from the bytes; a browser must not guess another
        "X-Content-Type-Options": "nosniff",
    }
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    wanted: ByteRange | None
    try:
        wanted = parse_range(request.headers.get("range"), asset.bytes)
    except Unsatisfiable:
        return Response(
            status_code=416, headers={**headers, "Content-Range": f"bytes */{asset.bytes}"}
        )
    if_range = request.headers.get("if-range")
    if wanted is not None and if_range is not None and if_range.strip() != etag:
        wanted = None
    status = 200 if wanted is None else 206
    part = ByteRange(0, asset.bytes, asset.bytes) if wanted is None else wanted
    headers["Content-Type"] = asset.content_type
    headers["Content-Length"] = str(part.length)
    if wanted is not None:
        headers["Content-Range"] = wanted.content_range
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    chunks = svc.assets.store.read(asset.sha256, part.start, part.end)
    try:
        first = await anext(chunks, b"")  # a blob gone under us is a 410, not a broken body
    except BlobMissing:
        raise AssetExpired("This image's bytes are no longer kept.") from None
    return StreamingResponse(_prepend(first, chunks), status_code=status, headers=headers)


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


async def task_result(request: Request) -> Response:
    svc, who = await caller(request)
    task = await usecases.get_task(svc.store, who.account_id, request.path_params["task_id"])
    raw = request.path_params["index"]
    results = task.state.results
    if not (raw.isascii() and raw.isdigit()) or int(raw) >= len(results):
        raise NotFound("The task has no result with that index.", field="index")
    result = results[int(raw)]
    target = result.url if result.asset_id is None else svc.assets.links.url(result.asset_id)
    return RedirectResponse(target, status_code=302)


async def upload(request: Request) -> Response:
    svc, who = await caller(request)
    declared = declared_length(request, svc.assets.settings.max_upload_bytes)
    asset = await create_upload(
        svc.assets, svc.store, svc.clock, account_id=who.account_id,
        content_type=request.headers.get("content-type", ""),
        declared_length=declared,
        body=request.stream(),
    )  # fmt: skip
    body = upload_object(asset, svc.assets.links.url(asset.id))
    return JSONResponse(body, status_code=201, headers={"Location": body["url"]})
