"""Settings: config files plus environment, read once, failing fast with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import ConfigError
from service.settings import PROJECT_ROOT, load_settings
from tests.conftest import SECRET, settings_env

DEFAULT = str(PROJECT_ROOT / "config" / "default.toml")


def test_dev_config_extends_default(tmp_path: Path) -> None:
    settings = load_settings(settings_env(tmp_path))
    assert settings.service.environment == "development"
    assert settings.logging.format == "console"
    assert settings.api.max_body_bytes == 1048576  # inherited from default.toml
    assert settings.storage.data_dir == tmp_path
    assert "nano-banana-2" in settings.pricing.models
    assert settings.moderation.rules


def test_production_requires_secret_key(tmp_path: Path) -> None:
    env = {"TASKHOOK_CONFIG": DEFAULT, "TASKHOOK_DATA_DIR": str(tmp_path)}
    with pytest.raises(ConfigError, match="TASKHOOK_SECRET_KEY"):
        load_settings(env)
    assert not (tmp_path / "secret_key").exists()


def test_production_with_secret_key(tmp_path: Path) -> None:
    env = {"TASKHOOK_CONFIG": DEFAULT, "TASKHOOK_SECRET_KEY": SECRET}
    settings = load_settings(env)
    assert settings.service.production
    assert settings.logging.format == "json"
    assert settings.secret_key.reveal() == SECRET


def test_short_secret_key_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 32"):
        load_settings(settings_env(tmp_path, TASKHOOK_SECRET_KEY="short"))


def test_dev_generates_and_keeps_a_secret_key(tmp_path: Path) -> None:
    env = settings_env(tmp_path)
    del env["TASKHOOK_SECRET_KEY"]
    first = load_settings(env).secret_key.reveal()
    second = load_settings(env).secret_key.reveal()
    assert first == second
    assert len(first) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_secret_never_in_repr(tmp_path: Path) -> None:
    settings = load_settings(settings_env(tmp_path))
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.secret_key)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PORT", "eighty", "service.port (from PORT)"),
        ("PORT", "70000", "service.port (from PORT)"),
        ("TASKHOOK_LOG_FORMAT", "xml", "logging.format (from TASKHOOK_LOG_FORMAT)"),
        ("TASKHOOK__API__MAX_BODY_BYTES", "-1", "api.max_body_bytes"),
        ("TASKHOOK__API__NOPE", "1", "TASKHOOK__API__NOPE"),
        ("TASKHOOK__TASKS__DEFAULT_PROVIDER", "acme", "tasks.default_provider"),
    ],
)
def test_bad_environment_value_names_the_key(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(settings_env(tmp_path, **{name: value}))
    assert message in caught.value.message


def test_environment_overrides(tmp_path: Path) -> None:
    env = settings_env(tmp_path, PORT="9123", TASKHOOK__API__MAX_BODY_BYTES="2048")
    settings = load_settings(env)
    assert settings.service.port == 9123
    assert settings.api.max_body_bytes == 2048


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[service]\nport = 'x'\n", "service.port"),
        ("[service]\ncolour = 'red'\n", "unknown key service.colour"),
        ("[nonsense]\na = 1\n", "unknown key nonsense"),
        ("[files]\npricing = 'missing.toml'\n", "files.pricing"),
        ("[service\n", "not valid TOML"),
    ],
)
def test_bad_config_file_names_the_key(tmp_path: Path, extra: str, message: str) -> None:
    config = _write(tmp_path / "bad.toml", f"extends = '{DEFAULT}'\n{extra}")
    env = settings_env(tmp_path, TASKHOOK_CONFIG=str(config))
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_settings(env)


def test_bad_pricing_file_names_the_file(tmp_path: Path) -> None:
    _write(tmp_path / "pricing.toml", "[models.x]\ntext-to-image = 5\n[resolutions]\n1k = 1\n")
    config = _write(
        tmp_path / "cfg.toml", f"extends = '{DEFAULT}'\n[files]\npricing = 'pricing.toml'\n"
    )
    with pytest.raises(ConfigError, match=r"files\.pricing: pricing\.toml: models\.x"):
        load_settings(settings_env(tmp_path, TASKHOOK_CONFIG=str(config)))


def test_missing_config_file(tmp_path: Path) -> None:
    env = settings_env(tmp_path, TASKHOOK_CONFIG=str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="config file: file not found"):
        load_settings(env)


def test_simulator_secret_is_derived_stably_unless_given(tmp_path: Path) -> None:
    first = load_settings(settings_env(tmp_path)).simulator.secret.reveal()
    assert first.startswith("whsec_")
    assert load_settings(settings_env(tmp_path)).simulator.secret.reveal() == first
    other = load_settings(settings_env(tmp_path, TASKHOOK_SECRET_KEY="z" * 40))
    assert other.simulator.secret.reveal() != first
    given = "whsec_" + "QUJD" * 8
    chosen = load_settings(settings_env(tmp_path, TASKHOOK_SIMULATOR_SECRET=given))
    assert chosen.simulator.secret.reveal() == given
    with pytest.raises(ConfigError, match="TASKHOOK_SIMULATOR_SECRET"):
        load_settings(settings_env(tmp_path, TASKHOOK_SIMULATOR_SECRET="whsec_!!"))


def test_external_providers_are_switched_on_by_their_base_url(tmp_path: Path) -> None:
    assert load_settings(settings_env(tmp_path)).providers == {}
    env = settings_env(
        tmp_path,
        TASKHOOK_KIE_BASE_URL="https://api.kie.example/",
        TASKHOOK_KIE_API_KEY="kie-key",
        TASKHOOK_KIE_WEBHOOK_HMAC_KEY="hmac-key",
    )
    kie = load_settings(env).providers["kie"]
    assert (kie.base_url, kie.api_key, kie.webhook_key) == (
        "https://api.kie.example", "kie-key", "hmac-key",
    )  # fmt: skip
    with pytest.raises(ConfigError, match="TASKHOOK_BANANA2_BASE_URL"):
        load_settings(settings_env(tmp_path, TASKHOOK_BANANA2_BASE_URL="ftp://x"))


def test_previous_secret_keys_come_from_the_environment(tmp_path: Path) -> None:
    env = settings_env(tmp_path, TASKHOOK_SECRET_KEY_PREVIOUS="a" * 40 + ", " + "b" * 40)
    keys = load_settings(env).previous_secret_keys
    assert [k.reveal() for k in keys] == ["a" * 40, "b" * 40]
    assert "a" * 40 not in repr(load_settings(env))


def test_the_simulator_is_off_in_production_and_on_in_development(tmp_path: Path) -> None:
    production = load_settings({"TASKHOOK_CONFIG": DEFAULT, "TASKHOOK_SECRET_KEY": SECRET})
    assert not production.simulator.enabled
    assert production.tasks.default_provider == ""  # the first enabled one (service.app)
    development = load_settings(settings_env(tmp_path))
    assert development.simulator.enabled
    assert development.tasks.default_provider == "simulator"


def test_production_derives_a_simulator_key_from_the_secret_key(tmp_path: Path) -> None:
    """Web, worker and a standalone simulator sharing TASKHOOK_SECRET_KEY agree on it with no
    configuration; it is not the secret key, and it changes with it."""
    env = {"TASKHOOK_CONFIG": DEFAULT, "TASKHOOK_SECRET_KEY": SECRET}
    key = load_settings(env).simulator.api_key
    assert key is not None
    assert len(key.reveal()) >= 32
    assert SECRET not in key.reveal()
    again = load_settings(env).simulator.api_key
    assert again is not None
    assert again.reveal() == key.reveal()
    other = load_settings({**env, "TASKHOOK_SECRET_KEY": SECRET + "x"}).simulator.api_key
    assert other is not None
    assert other.reveal() != key.reveal()
    assert key.reveal() not in repr(load_settings(env))


def test_a_given_simulator_key_is_used_everywhere(tmp_path: Path) -> None:
    given = "sim-key-" + "k" * 32
    for env in (
        {"TASKHOOK_CONFIG": DEFAULT, "TASKHOOK_SECRET_KEY": SECRET},
        settings_env(tmp_path),
    ):
        key = load_settings({**env, "TASKHOOK_SIMULATOR_API_KEY": given}).simulator.api_key
        assert key is not None
        assert key.reveal() == given


def test_development_needs_no_simulator_key(tmp_path: Path) -> None:
    assert load_settings(settings_env(tmp_path)).simulator.api_key is None


def test_a_short_simulator_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TASKHOOK_SIMULATOR_API_KEY"):
        load_settings(settings_env(tmp_path, TASKHOOK_SIMULATOR_API_KEY="short"))
