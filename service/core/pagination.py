"""List pages: a bounded ``limit`` and an opaque cursor.

Ids are time-ordered, so a page of "newest first" ends at an id and the next page is everything
older than it. The cursor is ``c`` + the 26 time-and-randomness characters of that id: clients
treat it as opaque (the leading version letter lets us change it later), and every string of
that shape is a valid place in time — so a schema can describe exactly the cursors we accept.
The account scoping of the query, not the cursor, decides what a page may show.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from service.errors import MalformedRequest, ValidationFailed

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
CURSOR_PATTERN = r"^c[0-9A-HJKMNP-TV-Z]{26}$"
_CURSOR = re.compile(CURSOR_PATTERN)


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
    return "c" + last_id.partition("_")[2]


def decode_cursor(raw: str | None, prefix: str) -> str | None:
    """The id a cursor points at, as an id of this list's ``prefix``."""
    if raw is None or raw == "":
        return None
    if not _CURSOR.fullmatch(raw):
        raise MalformedRequest("cursor is not one this list gave out.", field="cursor")
    return f"{prefix}_{raw[1:]}"


def next_cursor(ids: list[str], limit: int) -> str | None:
    """Given the ids of a page fetched with ``limit + 1`` rows, the cursor of the next page."""
    return encode_cursor(ids[limit - 1]) if len(ids) > limit else None
