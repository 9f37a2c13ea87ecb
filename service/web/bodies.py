"""Reading request bodies safely: media type first, a size cap before parsing, strict JSON."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from service.errors import MalformedRequest, PayloadTooLarge, UnsupportedMediaType


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise MalformedRequest("Content-Length is not a number.")
        if int(declared) > max_bytes:
            raise PayloadTooLarge(f"The body exceeds {max_bytes} bytes.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"The body exceeds {max_bytes} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def read_json(request: Request, max_bytes: int, *, required: bool = True) -> Any:
    """Parse a JSON body. 415 for another media type, 413 past the cap, 400 if not JSON."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        if (
            not required
            and media_type == ""
            and request.headers.get("content-length") in (None, "0")
        ):
            return None
        raise UnsupportedMediaType("Send the body as application/json.")
    raw = await read_body(request, max_bytes)
    if not raw.strip() and not required:
        return None
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedRequest("The body is not valid UTF-8 JSON.") from None
