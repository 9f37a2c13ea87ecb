"""Bearer API keys: look up by prefix, compare the hash in constant time, refuse revoked keys."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from starlette.requests import Request

from service.core.keys import key_matches, key_prefix
from service.errors import Unauthorized
from service.store.base import Store


@dataclass(frozen=True)
class Principal:
    account_id: str
    key_id: str
    is_admin: bool


async def authenticate(request: Request, store: Store) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise Unauthorized("Send your API key as 'Authorization: Bearer <key>'.")
    raw = raw.strip()
    prefix = key_prefix(raw)
    key = await store.find_api_key(prefix) if prefix else None
    if key is None or not key_matches(raw, key.key_hash) or key.revoked_at is not None:
        raise Unauthorized("The API key is not valid.")
    structlog.contextvars.bind_contextvars(account_id=key.account_id, key_id=key.id)
    return Principal(account_id=key.account_id, key_id=key.id, is_admin=key.is_admin)
