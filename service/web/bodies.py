"""Reading request bodies safely: media type first, a size cap before parsing, strict JSON.

"Strict" means what we store and later sign can always be encoded again: no NaN or Infinity
(not JSON, and ``1e400`` parses to infinity), no lone UTF-16 surrogates (``"\\ud800"`` is valid
JSON text but cannot be encoded as UTF-8).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from service.core import strictjson
from service.errors import MalformedRequest, PayloadTooLarge, UnsupportedMediaType

_MAX_LENGTH_DIGITS = 18


def declared_length(request: Request, max_bytes: int) -> int | None:
    """The request's ``Content-Length`` (``None`` when it sends none): 400 when it is not a
    number, 413 when it is past ``max_bytes`` (so a body too large is refused unread)."""
    declared = request.headers.get("content-length")
    if declared is None:
        return None
    if not (declared.isascii() and declared.isdigit()):
        raise MalformedRequest("Content-Length is not a number.")
    if len(declared) > _MAX_LENGTH_DIGITS or int(declared) > max_bytes:
        raise PayloadTooLarge(f"The body exceeds {max_bytes} bytes.")
    return int(declared)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes ``max_bytes``."""
    declared_length(request, max_bytes)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"The body exceeds {max_bytes} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    """Strict JSON from bytes; ``MalformedRequest`` (400) for anything we could not store."""
    try:
        return strictjson.loads(raw)
    except ValueError:
        raise MalformedRequest("The body is not valid UTF-8 JSON.") from None


async def read_json(request: Request, max_bytes: int) -> Any:
    """Parse a JSON body. 415 for another media type, 413 past the cap, 400 if not JSON."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaType("Send the body as application/json.")
    return parse_json(await read_body(request, max_bytes))
