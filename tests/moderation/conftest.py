"""The app with the external moderation stage switched on, against the loopback fake of the
API (``fake_api``). ``on_error`` is a fixture so a test can parametrize it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from service.settings import Settings, load_settings
from tests.conftest import EXTERNAL_PROVIDERS, settings_env
from tests.moderation.fake_api import API_KEY, FakeModerationApi, fake_moderation_api

#: short, so that the fake's slow answer outlasts it without slowing the suite
TIMEOUT_SECONDS = "0.3"


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeModerationApi]:
    async with fake_moderation_api() as fake:
        yield fake


@pytest.fixture
def on_error() -> str:
    return "block"


@pytest.fixture
def settings(tmp_path: Path, fake_api: FakeModerationApi, on_error: str) -> Settings:
    return load_settings(
        settings_env(
            tmp_path,
            **EXTERNAL_PROVIDERS,
            TASKHOOK_MODERATION_URL=fake_api.url,
            TASKHOOK_MODERATION_API_KEY=API_KEY,
            TASKHOOK__MODERATION__ON_ERROR=on_error,
            TASKHOOK__MODERATION__TIMEOUT_SECONDS=TIMEOUT_SECONDS,
        )
    )
