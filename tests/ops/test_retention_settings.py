"""The ``[retention]`` settings section: production defaults, the dev override, the environment,
and a bad value named by its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import ConfigError
from service.settings import PROJECT_ROOT, RetentionSettings, load_settings
from tests.conftest import SECRET, settings_env

DEFAULT = str(PROJECT_ROOT / "config" / "default.toml")


def test_production_keeps_thirty_days_and_purges_hourly(tmp_path: Path) -> None:
    env = {"TASKHOOK_CONFIG": DEFAULT, "TASKHOOK_SECRET_KEY": SECRET}
    assert load_settings(env).retention == RetentionSettings(
        max_age_days=30, interval_seconds=3600, batch_size=1000
    )


def test_dev_purges_more_often_and_keeps_the_same_age(tmp_path: Path) -> None:
    retention = load_settings(settings_env(tmp_path)).retention
    assert retention.max_age_days == 30
    assert retention.interval_seconds < 3600
    assert retention.batch_size == 1000


def test_the_environment_overrides_retention(tmp_path: Path) -> None:
    env = settings_env(
        tmp_path,
        TASKHOOK__RETENTION__MAX_AGE_DAYS="7",
        TASKHOOK__RETENTION__INTERVAL_SECONDS="120",
        TASKHOOK__RETENTION__BATCH_SIZE="50",
    )
    assert load_settings(env).retention == RetentionSettings(7, 120, 50)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TASKHOOK__RETENTION__MAX_AGE_DAYS", "0"),
        ("TASKHOOK__RETENTION__MAX_AGE_DAYS", "thirty"),
        ("TASKHOOK__RETENTION__INTERVAL_SECONDS", "0"),
        ("TASKHOOK__RETENTION__BATCH_SIZE", "-5"),
    ],
)
def test_a_bad_retention_value_names_the_key(tmp_path: Path, name: str, value: str) -> None:
    key = "retention." + name.removeprefix("TASKHOOK__RETENTION__").lower()
    with pytest.raises(ConfigError) as caught:
        load_settings(settings_env(tmp_path, **{name: value}))
    assert f"{key} (from {name})" in caught.value.message


def test_an_unknown_retention_key_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(f"extends = '{DEFAULT}'\n[retention]\nkeep_forever = true\n")
    with pytest.raises(ConfigError, match=r"unknown key retention\.keep_forever"):
        load_settings(settings_env(tmp_path, TASKHOOK_CONFIG=str(config)))
