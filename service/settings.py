"""Settings: read once from ``config/*.toml`` and the environment into one frozen object.

Start-up fails fast: an unknown key, a value of the wrong type or a missing secret stops the
process with a message naming the key (and the environment variable it came from). Secrets come
only from the environment and never show in a ``repr``.
"""

from __future__ import annotations

import hmac
import os
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from service.config_schema import SCHEMA, SHORTCUTS
from service.core.moderation import Ruleset
from service.core.pricing import PricingTable
from service.core.signing import decode_secret, encode_secret
from service.errors import ConfigError
from service.providers.base import ProviderConfig
from service.store.permissions import create_private_dir
from service.store.postgres.admin import is_postgres_url

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "default.toml"
MIN_SECRET_LENGTH = 32


class Secret:
    """A string that will not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


@dataclass(frozen=True)
class ServiceSettings:
    environment: str
    host: str
    port: int
    public_url: str

    @property
    def production(self) -> bool:
        return self.environment == "production"

    @property
    def public_base(self) -> str:
        """The base URL callbacks and simulator images are minted on."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class StorageSettings:
    data_dir: Path
    busy_timeout_ms: int
    synchronous: str
    #: "" or sqlite:///PATH (SQLite), or postgresql://… (PostgreSQL)
    url: str = ""
    #: connections each process keeps to PostgreSQL
    pool_size: int = 10
    migrate_on_start: bool = True

    @property
    def is_postgres(self) -> bool:
        return is_postgres_url(self.url)

    @property
    def database_path(self) -> Path:
        if self.url.startswith("sqlite:///"):
            return Path(self.url.removeprefix("sqlite:///"))
        return self.data_dir / "taskhook.db"


@dataclass(frozen=True)
class ApiSettings:
    max_body_bytes: int
    idempotency_ttl_seconds: int
    #: requests a second each API key may make on average (0: no limit)
    rate_limit: int
    #: requests a key may make at once after a quiet spell; a whole multiple of ``rate_limit``
    rate_limit_burst: int
    #: where the counters live: "" (this process's memory) or a redis:// URL (shared)
    rate_limit_storage: str
    #: what Redis keys start with, so deployments sharing one Redis keep their counts apart
    rate_limit_prefix: str

    @property
    def rate_limit_window_seconds(self) -> int:
        """The window a burst is counted over: ``burst`` requests per ``burst / rate``
        seconds is ``rate`` a second on average, with ``burst`` allowed at once."""
        return self.rate_limit_burst // self.rate_limit if self.rate_limit else 0


@dataclass(frozen=True)
class LogSettings:
    format: str
    level: str


@dataclass(frozen=True)
class TaskSettings:
    default_provider: str
    providers: tuple[str, ...]
    #: queued, submitted or running tasks an account may have at once (0: no cap)
    max_in_flight_per_account: int


@dataclass(frozen=True)
class UpstreamSettings:
    callback_deadline_seconds: int
    poll_interval_seconds: int
    give_up_seconds: int
    submit_max_attempts: int
    submit_backoff_base_ms: int
    submit_backoff_max_ms: int
    lease_seconds: int
    token_max_age_seconds: int
    timestamp_tolerance_seconds: int
    request_timeout_seconds: int


@dataclass(frozen=True)
class WorkerSettings:
    in_serve: bool
    idle_poll_ms: int
    batch_size: int
    concurrency: int


@dataclass(frozen=True)
class DeliverySettings:
    allowed_networks: tuple[str, ...]
    schedule_seconds: tuple[int, ...]
    jitter_fraction: float
    request_timeout_seconds: int
    disable_after_failing_seconds: int
    secret_overlap_seconds: int
    response_excerpt_bytes: int
    concurrency: int
    per_endpoint_concurrency: int
    lease_seconds: int
    batch_size: int


@dataclass(frozen=True)
class RetentionSettings:
    """Event payloads and callback bodies older than ``max_age_days`` are emptied every
    ``interval_seconds``, ``batch_size`` rows per transaction (see ``service.retention``)."""

    max_age_days: int
    interval_seconds: int
    batch_size: int
    #: asset bytes older than this are deleted (the metadata stays); 0 keeps them forever
    asset_max_age_days: int = 30


@dataclass(frozen=True)
class S3Settings:
    """Where ``[assets] store = "s3"`` keeps the bytes (``TASKHOOK_S3_*``)."""

    bucket: str
    endpoint_url: str | None = None
    prefix: str = ""
    region: str = "us-east-1"
    access_key_id: Secret | None = None
    secret_access_key: Secret | None = None


@dataclass(frozen=True)
class AssetSettings:
    """``[assets]``: the mirrored results and uploads taskhook keeps (see ``service.assets``)."""

    store: str
    #: CIDRs a result may be downloaded from although the endpoints' SSRF policy refuses them
    allowed_networks: tuple[str, ...]
    max_bytes: int
    max_upload_bytes: int
    url_ttl_seconds: int
    download_timeout_seconds: int
    download_attempts: int
    backoff_base_ms: int
    backoff_max_ms: int
    concurrency: int
    batch_size: int
    lease_seconds: int
    #: set when ``store = "s3"``
    s3: S3Settings | None = None


@dataclass(frozen=True)
class ExternalModerationSettings:
    """The second moderation stage (``[moderation]``): an OpenAI-compatible moderation API,
    called after the rules allowed a prompt. Off while ``url`` is ``None``."""

    on_error: str
    timeout_seconds: float
    model: str
    #: the endpoint POSTed to (TASKHOOK_MODERATION_URL), e.g. https://api.openai.com/v1/moderations
    url: str | None = None
    #: sent as a bearer token (TASKHOOK_MODERATION_API_KEY); ``None`` sends none
    api_key: Secret | None = None

    @property
    def enabled(self) -> bool:
        return self.url is not None


@dataclass(frozen=True)
class SimulatorSettings:
    enabled: bool
    latency_ms: int
    progress_steps: int
    failure_rate: float
    #: jobs whose callbacks are not all sent yet; createTask answers 429 beyond
    max_pending_callbacks: int
    #: fraction of result images served badly (500 then fine, 404 for good, or slowly)
    image_faults: float
    #: Standard Webhooks secret its callbacks are signed with (TASKHOOK_SIMULATOR_SECRET)
    secret: Secret
    #: the ``Authorization: Bearer`` key createTask and recordInfo ask for
    #: (TASKHOOK_SIMULATOR_API_KEY; in production one derived from the secret key); ``None``:
    #: open, in development only
    api_key: Secret | None = None


@dataclass(frozen=True)
class Settings:
    config_path: Path
    service: ServiceSettings
    storage: StorageSettings
    api: ApiSettings
    logging: LogSettings
    tasks: TaskSettings
    upstream: UpstreamSettings
    workers: WorkerSettings
    delivery: DeliverySettings
    retention: RetentionSettings
    assets: AssetSettings
    simulator: SimulatorSettings
    #: kie, banana2, nanobananapro: present only when their TASKHOOK_<NAME>_BASE_URL is set
    providers: Mapping[str, ProviderConfig]
    pricing: PricingTable
    moderation: Ruleset
    external_moderation: ExternalModerationSettings
    secret_key: Secret
    #: earlier secret keys, still accepted for callback tokens (TASKHOOK_SECRET_KEY_PREVIOUS)
    previous_secret_keys: tuple[Secret, ...] = ()

    @property
    def signing_keys(self) -> list[str]:
        """Every key a signature of ours may be under, oldest first, the current one last
        (itsdangerous signs with the last and accepts any): callback tokens, asset links."""
        return [k.reveal() for k in (*self.previous_secret_keys, self.secret_key)]


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the config file named by ``TASKHOOK_CONFIG`` (default ``config/default.toml``)."""
    env = os.environ if env is None else env
    path = Path(env.get("TASKHOOK_CONFIG") or DEFAULT_CONFIG).resolve()
    raw = _read_with_bases(path, seen=())
    values: dict[str, dict[str, Any]] = {}
    for section, fields in SCHEMA.items():
        given = raw.pop(section, {})
        if not isinstance(given, dict):
            raise ConfigError(f"{path.name}: [{section}] must be a table")
        for key in set(given) - set(fields):
            raise ConfigError(f"{path.name}: unknown key {section}.{key}")
        values[section] = dict(given)
    for key in raw:
        raise ConfigError(f"{path.name}: unknown key {key}")
    for name, (section, key) in _env_overrides(env):
        values[section][key] = (env[name], name)

    checked: dict[str, dict[str, Any]] = {}
    for section, fields in SCHEMA.items():
        checked[section] = {}
        for key, convert in fields.items():
            source = f"{section}.{key}"
            if key not in values[section]:
                raise ConfigError(f"{path.name}: missing key {source}")
            value = values[section][key]
            if isinstance(value, tuple):
                value, env_name = value
                source = f"{source} (from {env_name})"
            try:
                checked[section][key] = convert(value)
            except ValueError as exc:
                raise ConfigError(f"{source}: {exc}") from None
    return _build(path, checked, env)


def _read_with_bases(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    if path in seen:
        raise ConfigError(f"{path.name}: 'extends' loops back to itself")
    data = _read_toml(path, "config file")
    base_name = data.pop("extends", None)
    if base_name is None:
        return data
    if not isinstance(base_name, str):
        raise ConfigError(f"{path.name}: extends must be a file name")
    base = _read_with_bases((path.parent / base_name).resolve(), (*seen, path))
    for section, table in data.items():
        if isinstance(table, dict) and isinstance(base.get(section), dict):
            base[section] = {**base[section], **table}
        else:
            base[section] = table
    return base


def _env_overrides(env: Mapping[str, str]) -> list[tuple[str, tuple[str, str]]]:
    found = [(name, target) for name, target in SHORTCUTS.items() if name in env]
    for name in env:
        if not name.startswith("TASKHOOK__"):
            continue
        section, _, key = name.removeprefix("TASKHOOK__").lower().partition("__")
        if key not in SCHEMA.get(section, {}):
            raise ConfigError(f"{name}: no such setting {section}.{key}")
        found.append((name, (section, key)))
    return found


def _build(path: Path, v: dict[str, dict[str, Any]], env: Mapping[str, str]) -> Settings:
    service = ServiceSettings(**v["service"])
    storage = StorageSettings(
        data_dir=Path(v["storage"]["data_dir"]),
        busy_timeout_ms=v["storage"]["busy_timeout_ms"],
        synchronous=v["storage"]["synchronous"],
        url=v["storage"]["url"],
        pool_size=v["storage"]["pool_size"],
        migrate_on_start=v["storage"]["migrate_on_start"],
    )
    tasks = TaskSettings(**v["tasks"])
    if tasks.default_provider and tasks.default_provider not in tasks.providers:
        raise ConfigError(
            f"tasks.default_provider: {tasks.default_provider!r} is not in tasks.providers"
        )
    pricing: PricingTable = _side_file(
        path, v["files"]["pricing"], "files.pricing", PricingTable.from_mapping
    )
    moderation: Ruleset = _side_file(
        path, v["files"]["moderation"], "files.moderation", Ruleset.from_mapping
    )
    secret_key = _secret_key(env, service, storage)
    upstream = UpstreamSettings(**v["upstream"])
    return Settings(
        config_path=path,
        service=service,
        storage=storage,
        api=_api_settings(v["api"]),
        logging=LogSettings(**v["logging"]),
        tasks=tasks,
        upstream=upstream,
        workers=WorkerSettings(**v["workers"]),
        delivery=DeliverySettings(**v["delivery"]),
        retention=RetentionSettings(**v["retention"]),
        assets=_asset_settings(env, v["assets"]),
        simulator=SimulatorSettings(
            **v["simulator"],
            secret=_simulator_secret(env, secret_key),
            api_key=_simulator_api_key(env, service, secret_key),
        ),
        providers=_provider_configs(env, upstream),
        pricing=pricing,
        moderation=moderation,
        external_moderation=_external_moderation(env, v["moderation"]),
        secret_key=secret_key,
        previous_secret_keys=tuple(
            Secret(key.strip())
            for key in env.get("TASKHOOK_SECRET_KEY_PREVIOUS", "").split(",")
            if key.strip()
        ),
    )


def _api_settings(values: dict[str, Any]) -> ApiSettings:
    api = ApiSettings(**values)
    rate, burst = api.rate_limit, api.rate_limit_burst
    if rate and (burst < rate or burst % rate):
        # The library counts windows of whole seconds: burst ÷ rate must be one.
        raise ConfigError(
            f"api.rate_limit_burst: must be a whole multiple of api.rate_limit ({rate}),"
            f" so that the window, burst ÷ rate seconds, is whole; got {burst}"
        )
    if rate and burst // rate > 86400:
        raise ConfigError("api.rate_limit_burst: at most a day's worth of api.rate_limit")
    return api


def _asset_settings(env: Mapping[str, str], values: dict[str, Any]) -> AssetSettings:
    s3 = None
    if values["store"] == "s3":
        bucket = env.get("TASKHOOK_S3_BUCKET", "").strip()
        if not bucket:
            raise ConfigError('assets.store = "s3" needs TASKHOOK_S3_BUCKET')
        endpoint = env.get("TASKHOOK_S3_ENDPOINT_URL", "").strip() or None
        if endpoint is not None and not endpoint.startswith(("http://", "https://")):
            raise ConfigError("TASKHOOK_S3_ENDPOINT_URL: must be an http(s) URL")
        key_id = env.get("TASKHOOK_S3_ACCESS_KEY_ID")
        secret = env.get("TASKHOOK_S3_SECRET_ACCESS_KEY")
        s3 = S3Settings(
            bucket=bucket,
            endpoint_url=endpoint.rstrip("/") if endpoint else None,
            prefix=env.get("TASKHOOK_S3_PREFIX", "").strip().strip("/"),
            region=env.get("TASKHOOK_S3_REGION", "").strip() or "us-east-1",
            access_key_id=Secret(key_id) if key_id else None,
            secret_access_key=Secret(secret) if secret else None,
        )
    return AssetSettings(**values, s3=s3)


_EXTERNAL_PROVIDERS = ("kie", "banana2", "nanobananapro")


def _provider_configs(
    env: Mapping[str, str], upstream: UpstreamSettings
) -> dict[str, ProviderConfig]:
    """Providers the environment configures: ``TASKHOOK_<NAME>_BASE_URL`` switches one on."""
    found = {}
    for name in _EXTERNAL_PROVIDERS:
        prefix = f"TASKHOOK_{name.upper()}_"
        base_url = env.get(prefix + "BASE_URL", "").strip()
        if not base_url:
            continue
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"{prefix}BASE_URL: must be an http(s) URL")
        found[name] = ProviderConfig(
            name=name,
            base_url=base_url.rstrip("/"),
            api_key=env.get(prefix + "API_KEY") or None,
            webhook_key=env.get(prefix + "WEBHOOK_HMAC_KEY") or None,
            timeout_s=float(upstream.request_timeout_seconds),
            timestamp_tolerance_s=upstream.timestamp_tolerance_seconds,
        )
    return found


def _external_moderation(
    env: Mapping[str, str], section: dict[str, Any]
) -> ExternalModerationSettings:
    """``[moderation]`` and, from the environment, the API's URL and key. The URL is the full
    endpoint, not a base: compatible services and gateways put it under different paths (the
    OpenAI SDK's own base URL already ends in ``/v1``), so appending one would guess."""
    url = env.get("TASKHOOK_MODERATION_URL", "").strip()
    key = env.get("TASKHOOK_MODERATION_API_KEY", "").strip()
    if not url:
        return ExternalModerationSettings(**section)
    try:
        parts = urlsplit(url)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # an unbalanced "[" or a port that is not a number
        usable = False
    if not usable:
        raise ConfigError("TASKHOOK_MODERATION_URL: must be an http(s) URL")
    if parts.path in ("", "/"):
        raise ConfigError(
            "TASKHOOK_MODERATION_URL: give the full endpoint, e.g. "
            "https://api.openai.com/v1/moderations"
        )
    return ExternalModerationSettings(**section, url=url, api_key=Secret(key) if key else None)


def _simulator_secret(env: Mapping[str, str], secret_key: Secret) -> Secret:
    """``TASKHOOK_SIMULATOR_SECRET``, or one derived from the secret key (stable, never stored)."""
    given = env.get("TASKHOOK_SIMULATOR_SECRET")
    if given:
        try:
            decode_secret(given)
        except ValueError as exc:
            raise ConfigError(f"TASKHOOK_SIMULATOR_SECRET: {exc}") from None
        return Secret(given)
    derived = hmac.new(secret_key.reveal().encode(), b"taskhook.simulator", "sha256").digest()
    return Secret(encode_secret(derived))


def _simulator_api_key(
    env: Mapping[str, str], service: ServiceSettings, secret_key: Secret
) -> Secret | None:
    """``TASKHOOK_SIMULATOR_API_KEY``; else, in production, one derived from the secret key.

    Derived, not required: ``serve``'s adapter and the simulator it mounts, ``web`` and
    ``worker``, and ``python -m service simulator`` beside them all share TASKHOOK_SECRET_KEY,
    so they agree on the key with nothing more to configure, and it is as hard to guess as the
    secret key (and rotates with it). Development leaves the simulator open to poke at by hand.
    """
    given = env.get("TASKHOOK_SIMULATOR_API_KEY")
    if given:
        if len(given) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"TASKHOOK_SIMULATOR_API_KEY: must be at least {MIN_SECRET_LENGTH} characters"
            )
        return Secret(given)
    if not service.production:
        return None
    derived = hmac.new(secret_key.reveal().encode(), b"taskhook.simulator.api_key", "sha256")
    return Secret("sim_" + derived.hexdigest())


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{what}: file not found: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what}: {path.name} is not valid TOML: {exc}") from None


def _side_file(config: Path, name: str, key: str, build: Callable[[dict[str, Any]], Any]) -> Any:
    """Load a file the config names (pricing, moderation) and build its table from it."""
    path = (config.parent / name).resolve()
    data = _read_toml(path, key)
    try:
        return build(data)
    except ValueError as exc:
        raise ConfigError(f"{key}: {path.name}: {exc}") from None


def _secret_key(
    env: Mapping[str, str], service: ServiceSettings, storage: StorageSettings
) -> Secret:
    given = env.get("TASKHOOK_SECRET_KEY")
    if given is not None:
        if len(given) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"TASKHOOK_SECRET_KEY: must be at least {MIN_SECRET_LENGTH} characters"
            )
        return Secret(given)
    if service.production:
        raise ConfigError("TASKHOOK_SECRET_KEY: required in production (environment only)")
    # Development only: a key generated once into the data dir, so restarts keep tokens valid.
    path = storage.data_dir / "secret_key"
    if not path.exists():
        create_private_dir(storage.data_dir)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return Secret(path.read_text().strip())
