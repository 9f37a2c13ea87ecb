"""Core objects with sensible defaults, for tests that need one and care about a few fields."""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

from service.core.clock import system_clock
from service.core.endpoints import Endpoint, generate_secret
from service.core.ids import new_id
from service.core.secretbox import SecretBox
from tests.conftest import SECRET

#: what ``app.open_store`` seals endpoint secrets with under the test settings' secret key
SECRET_BOX = SecretBox.from_keys(SECRET)


def make_endpoint(
    account_id: str,
    url: str = "http://127.0.0.1:9/hook",
    *,
    now: int | None = None,
    **changes: Any,
) -> Endpoint:
    """An enabled, healthy endpoint subscribed to every event type, with a fresh secret;
    ``changes`` override any field."""
    at = system_clock() if now is None else now
    endpoint = Endpoint(
        id=new_id("ep", at), account_id=account_id, url=url, description="", event_types=None,
        enabled=True, disabled_reason=None, secret=generate_secret(secrets.token_bytes(32)),
        previous_secret=None, previous_secret_until=None, failing_since=None, created_at=at,
        updated_at=at,
    )  # fmt: skip
    return replace(endpoint, **changes)
