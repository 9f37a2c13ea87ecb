"""List pages: a bounded ``limit`` and an opaque cursor.

Ids are time-ordered, so a page of "newest first" ends at an id and the next page is everything
older than it. The cursor wraps that id so clients treat it as opaque and we can change its
content later without breaking them.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from service.core.ids import is_id
from service.errors import MalformedRequest, ValidationFailed

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_VERSION = "v1:"


@dataclass(frozen=True)
class PageRequest:
    limit: int
    before: str | None = None


def page_request(limit: str | None, cursor: str | None, prefix: str) -> PageRequest:
    """Parse ``?limit=&cursor=`` for a list of ``prefix`` ids."""
    return PageRequest(limit=parse_limit(limit), before=decode_cursor(cursor, prefix))


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isascii() or not raw.isdigit():
        raise MalformedRequest("limit must be a whole number.", field="limit")
    digits = raw.lstrip("0") or "0"
    limit = int(digits) if len(digits) <= 3 else MAX_LIMIT + 1
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be between 1 and {MAX_LIMIT}.", field="limit")
    return limit


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode((_VERSION + last_id).encode()).decode().rstrip("=")


def decode_cursor(raw: str | None, prefix: str) -> str | None:
    if raw is None or raw == "":
        return None
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (binascii.Error, ValueError):
        text = ""
    last_id = text.removeprefix(_VERSION)
    if not text.startswith(_VERSION) or not is_id(last_id, prefix):
        raise MalformedRequest("cursor is not one this list gave out.", field="cursor")
    return last_id


def next_cursor(ids: list[str], limit: int) -> str | None:
    """Given the ids of a page fetched with ``limit + 1`` rows, the cursor of the next page."""
    return encode_cursor(ids[limit - 1]) if len(ids) > limit else None
