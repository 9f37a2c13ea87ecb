"""Helpers for the endpoint tests: create endpoints over HTTP and read the rows they wrote."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.store.sqlite import SqliteStore
from tests.backends import reader
from tests.conftest import Caller

HOOK = "http://127.0.0.1:9/hook"


class Api:
    """The endpoint routes for one client, asserting the status each call should answer."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def create(self, who: Caller, **body: Any) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/endpoints", json={"url": HOOK, **body}, headers=who.headers
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def get(self, who: Caller, endpoint_id: str) -> httpx.Response:
        return await self.client.get(f"/v1/endpoints/{endpoint_id}", headers=who.headers)

    async def patch(self, who: Caller, endpoint_id: str, body: Any) -> httpx.Response:
        return await self.client.patch(
            f"/v1/endpoints/{endpoint_id}", json=body, headers=who.headers
        )


@pytest.fixture
def api(client: httpx.AsyncClient) -> Api:
    return Api(client)


async def rows(store: SqliteStore, sql: str, *args: object) -> list[dict[str, Any]]:
    """What a committed transaction left in the file, read on the store's reader connection."""
    async with reader(store).execute(sql, args) as cursor:
        return [dict(r) for r in await cursor.fetchall()]
