"""Helpers shared by the adapter tests: tasks, served fakes, and the expected error mapping."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from service.core.ledger import initial_state
from service.core.tasks import Task, TaskSpec
from tests.providers.fakes import FakeUpstream
from tests.servers import serve_app

API_KEY = "sk-test-0123456789abcdef"
T0 = 1_700_000_000_000

#: HTTP status → the failure code of the ProviderRejected it must become
REJECTIONS = [
    (400, "provider_bad_request"),
    (401, "provider_unauthorized"),
    (402, "provider_insufficient_credits"),
    (404, "provider_not_found"),
    (422, "provider_rejected"),
    (501, "provider_failed"),
]
#: HTTP statuses that must become ProviderRetryable
RETRYABLE = [429, 500, 502, 503]


def make_task(**spec: Any) -> Task:
    """A queued task; ``spec`` overrides ``TaskSpec`` fields."""
    fields: dict[str, Any] = {
        "prompt": "A banana cat in a spacesuit",
        "model": "nano-banana-pro",
        "type": "text-to-image",
        "provider": "kie",
    }
    fields.update(spec)
    if fields.get("images") and "type" not in spec:
        fields["type"] = "edit"
    return Task(
        id="task_0001",
        account_id="acct_0001",
        spec=TaskSpec(**fields),
        state=initial_state(T0),
        cost_credits=20,
        refunded_credits=0,
        created_at=T0,
    )


@asynccontextmanager
async def served(fake: FakeUpstream) -> AsyncIterator[str]:
    async with serve_app(fake.app()) as base:
        yield base


def closed_port_url() -> str:
    """A loopback URL nothing listens on (the port was bound and released)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"
