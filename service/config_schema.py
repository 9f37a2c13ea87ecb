"""What may appear in the config files, with a converter per key.

Each converter takes a TOML value or an environment string and returns the typed value, or
raises ``ValueError`` saying what is expected; the loader adds which key and where it came from.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

Convert = Callable[[Any], Any]


def _integer(low: int, high: int) -> Convert:
    def convert(value: Any) -> int:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"must be a whole number from {low} to {high}")
        return value

    return convert


def _choice(*options: str) -> Convert:
    def convert(value: Any) -> str:
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return str(value)

    return convert


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _flag(value: Any) -> bool:
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.lower() in ("true", "1", "yes")
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _fraction(value: Any) -> float:
    try:
        number = float(value) if isinstance(value, str) else value
    except ValueError:
        number = None
    if isinstance(number, bool) or not isinstance(number, int | float) or not 0 <= number <= 1:
        raise ValueError("must be a number from 0 to 1")
    return float(number)


def _seconds(low: float, high: float) -> Convert:
    def convert(value: Any) -> float:
        try:
            number = float(value) if isinstance(value, str) else value
        except ValueError:
            number = None
        if (
            isinstance(number, bool)
            or not isinstance(number, int | float)
            or not low <= number <= high
        ):
            raise ValueError(f"must be a number of seconds from {low:g} to {high:g}")
        return float(number)

    return convert


def _networks(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of CIDR networks")
    for network in value:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ValueError(f"{network!r} is not a CIDR network") from None
    return tuple(value)


def _schedule(value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        value = [int(part) for part in value.split(",") if part.strip().isdigit()]
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        raise ValueError("must be a non-empty list of whole seconds ≥ 0")
    return tuple(value)


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a non-empty list of names")
    return tuple(value)


def _limit_storage(value: Any) -> str:
    """Where rate-limit counters live: ``""`` (this process's memory) or a Redis URL."""
    text = _text(value).strip()
    if text and not text.startswith(("redis://", "rediss://", "redis+unix://")):
        raise ValueError("must be empty (in memory) or a redis://, rediss:// or redis+unix:// URL")
    return text


def _database_url(value: Any) -> str:
    text = _text(value).strip()
    if text and not text.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ValueError("must be empty, sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
    return text


def _key_prefix(value: Any) -> str:
    text = _text(value)
    if not 1 <= len(text) <= 64 or not all(c.isalnum() or c in "_-.:" for c in text):
        raise ValueError("must be 1 to 64 letters, digits or _ - . :")
    return text


SCHEMA: dict[str, dict[str, Convert]] = {
    "service": {
        "environment": _choice("production", "development"),
        "host": _text,
        "port": _integer(0, 65535),
        "public_url": _text,
    },
    "storage": {
        "data_dir": _text,
        "busy_timeout_ms": _integer(0, 600_000),
        "synchronous": _choice("FULL", "NORMAL"),
        "url": _database_url,
        "pool_size": _integer(2, 500),
        "migrate_on_start": _flag,
    },
    "api": {
        "max_body_bytes": _integer(1024, 64 * 1024 * 1024),
        "idempotency_ttl_seconds": _integer(60, 30 * 86400),
        "rate_limit": _integer(0, 1_000_000),
        "rate_limit_burst": _integer(1, 3_600_000_000),
        "rate_limit_storage": _limit_storage,
        "rate_limit_prefix": _key_prefix,
    },
    "logging": {
        "format": _choice("json", "console"),
        "level": _choice("debug", "info", "warning", "error"),
    },
    "tasks": {
        "default_provider": _text,
        "providers": _names,
        "max_in_flight_per_account": _integer(0, 10_000_000),
    },
    "upstream": {
        "callback_deadline_seconds": _integer(1, 7 * 86400),
        "poll_interval_seconds": _integer(1, 86400),
        "give_up_seconds": _integer(1, 30 * 86400),
        "submit_max_attempts": _integer(1, 100),
        "submit_backoff_base_ms": _integer(1, 3_600_000),
        "submit_backoff_max_ms": _integer(1, 86_400_000),
        "lease_seconds": _integer(1, 86400),
        "token_max_age_seconds": _integer(60, 365 * 86400),
        "timestamp_tolerance_seconds": _integer(1, 86400),
        "request_timeout_seconds": _integer(1, 600),
    },
    "workers": {
        "in_serve": _flag,
        "idle_poll_ms": _integer(10, 600_000),
        "batch_size": _integer(1, 1000),
        "concurrency": _integer(1, 1000),
    },
    "delivery": {
        "allowed_networks": _networks,
        "schedule_seconds": _schedule,
        "jitter_fraction": _fraction,
        "request_timeout_seconds": _integer(1, 300),
        "disable_after_failing_seconds": _integer(60, 90 * 86400),
        "secret_overlap_seconds": _integer(0, 30 * 86400),
        "response_excerpt_bytes": _integer(0, 1024 * 1024),
        "concurrency": _integer(1, 10_000),
        "per_endpoint_concurrency": _integer(1, 1000),
        "lease_seconds": _integer(1, 86400),
        "batch_size": _integer(1, 10_000),
    },
    "retention": {
        "max_age_days": _integer(1, 36500),
        "asset_max_age_days": _integer(0, 36500),
        "interval_seconds": _integer(1, 7 * 86400),
        "batch_size": _integer(1, 100_000),
    },
    "assets": {
        "store": _choice("file", "s3"),
        "allowed_networks": _networks,
        "max_bytes": _integer(1024, 1024 * 1024 * 1024),
        "max_upload_bytes": _integer(1024, 1024 * 1024 * 1024),
        "url_ttl_seconds": _integer(60, 365 * 86400),
        "download_timeout_seconds": _integer(1, 3600),
        "download_attempts": _integer(1, 100),
        "backoff_base_ms": _integer(1, 3_600_000),
        "backoff_max_ms": _integer(1, 86_400_000),
        "concurrency": _integer(1, 1000),
        "batch_size": _integer(1, 1000),
        "lease_seconds": _integer(1, 86400),
    },
    "simulator": {
        "enabled": _flag,
        "latency_ms": _integer(0, 3_600_000),
        "progress_steps": _integer(0, 10),
        "failure_rate": _fraction,
        "max_pending_callbacks": _integer(1, 100_000),
        "image_faults": _fraction,
    },
    "moderation": {
        "on_error": _choice("block", "allow"),
        "timeout_seconds": _seconds(0.05, 60),
        "model": _text,
    },
    "files": {"pricing": _text, "moderation": _text},
}

SHORTCUTS = {
    "PORT": ("service", "port"),
    "TASKHOOK_PORT": ("service", "port"),
    "TASKHOOK_HOST": ("service", "host"),
    "TASKHOOK_PUBLIC_URL": ("service", "public_url"),
    "TASKHOOK_DATA_DIR": ("storage", "data_dir"),
    "TASKHOOK_DATABASE_URL": ("storage", "url"),
    "TASKHOOK_LOG_LEVEL": ("logging", "level"),
    "TASKHOOK_LOG_FORMAT": ("logging", "format"),
}
