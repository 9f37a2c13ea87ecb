"""Fixtures for the adapter tests.

Every async test here runs in its module's event loop (``loop_scope="module"``), so that each
module serves its fake provider once instead of once per test; the fake is reset between tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio


@pytest_asyncio.fixture(loop_scope="module")
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    """A real client, long-lived and shared as the app's is (here: per test)."""
    async with httpx.AsyncClient(trust_env=False) as client:
        yield client
