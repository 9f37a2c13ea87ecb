"""The second stage's settings: off unless TASKHOOK_MODERATION_URL names a full endpoint, the key
from the environment only and never printed, ``[moderation]`` checked like every section."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import ConfigError
from service.settings import PROJECT_ROOT, load_settings
from tests.conftest import SECRET, settings_env

OPENAI = "https://api.openai.com/v1/moderations"


def test_the_stage_is_off_without_a_url_and_production_fails_closed() -> None:
    production = load_settings(
        {
            "TASKHOOK_CONFIG": str(PROJECT_ROOT / "config" / "default.toml"),
            "TASKHOOK_SECRET_KEY": SECRET,
        }
    )
    stage = production.external_moderation
    assert not stage.enabled
    assert (stage.url, stage.api_key) == (None, None)
    assert (stage.on_error, stage.timeout_seconds, stage.model) == (
        "block", 5.0, "omni-moderation-latest"
    )  # fmt: skip


def test_the_url_and_key_come_from_the_environment(tmp_path: Path) -> None:
    settings = load_settings(
        settings_env(
            tmp_path,
            TASKHOOK_MODERATION_URL=f"  {OPENAI} ",
            TASKHOOK_MODERATION_API_KEY="sk-very-secret",
            TASKHOOK__MODERATION__ON_ERROR="allow",
            TASKHOOK__MODERATION__TIMEOUT_SECONDS="1.5",
        )
    )
    stage = settings.external_moderation
    assert stage.enabled
    assert stage.url == OPENAI
    assert stage.api_key is not None
    assert stage.api_key.reveal() == "sk-very-secret"
    assert (stage.on_error, stage.timeout_seconds) == ("allow", 1.5)
    assert "sk-very-secret" not in repr(settings)


def test_a_key_is_optional(tmp_path: Path) -> None:
    settings = load_settings(settings_env(tmp_path, TASKHOOK_MODERATION_URL=OPENAI))
    assert settings.external_moderation.api_key is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("api.openai.com/v1/moderations", "http\\(s\\) URL"),
        ("ftp://example.com/v1/moderations", "http\\(s\\) URL"),
        ("http://[::1/v1/moderations", "http\\(s\\) URL"),
        ("https://api.openai.com", "full endpoint"),
        ("https://api.openai.com/", "full endpoint"),
    ],
)
def test_a_bad_url_stops_start_up(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"TASKHOOK_MODERATION_URL: .*{message}"):
        load_settings(settings_env(tmp_path, TASKHOOK_MODERATION_URL=url))


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TASKHOOK__MODERATION__ON_ERROR", "ignore", "moderation.on_error"),
        ("TASKHOOK__MODERATION__TIMEOUT_SECONDS", "0", "moderation.timeout_seconds"),
        ("TASKHOOK__MODERATION__TIMEOUT_SECONDS", "soon", "moderation.timeout_seconds"),
        ("TASKHOOK__MODERATION__TIMEOUT_SECONDS", "61", "moderation.timeout_seconds"),
    ],
)
def test_bad_moderation_settings_name_the_key(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(settings_env(tmp_path, **{name: value}))
