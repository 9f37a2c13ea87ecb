"""Which providers this process talks to, built from settings.

The simulator is served by this same process under ``/simulator``, so its base URL is our own
public address; the others are on only when the environment configures them.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from service.providers.banana2 import Banana2Provider
from service.providers.base import Provider, ProviderConfig, ReferenceFiles
from service.providers.kie import KieProvider
from service.providers.nanobananapro import NanoBananaProProvider
from service.providers.simulator_adapter import SimulatorProvider
from service.settings import Settings

_ADAPTERS: dict[str, Callable[[ProviderConfig, httpx.AsyncClient], Provider]] = {
    "kie": KieProvider,
    "banana2": Banana2Provider,
    "nanobananapro": NanoBananaProProvider,
}


def simulator_base(settings: Settings) -> str:
    return f"{settings.service.public_base}/simulator"


def enabled_providers(settings: Settings) -> tuple[str, ...]:
    """The names ``build_providers`` builds, in its order, known before anything is built."""
    names = ["simulator"] if settings.simulator.enabled else []
    names += settings.providers
    return tuple(name for name in names if name in settings.tasks.providers)


def build_providers(
    settings: Settings, client: httpx.AsyncClient, files: ReferenceFiles | None = None
) -> dict[str, Provider]:
    """Every enabled provider that ``tasks.providers`` allows, by name; ``files`` reads
    uploads for the providers that take files."""
    found: dict[str, Provider] = {}
    if settings.simulator.enabled:
        api_key = settings.simulator.api_key
        config = ProviderConfig(
            name="simulator",
            base_url=simulator_base(settings),
            api_key=None if api_key is None else api_key.reveal(),
            webhook_key=settings.simulator.secret.reveal(),
            timeout_s=float(settings.upstream.request_timeout_seconds),
            timestamp_tolerance_s=settings.upstream.timestamp_tolerance_seconds,
        )
        found["simulator"] = SimulatorProvider(config, client)
    for name, config in settings.providers.items():
        if name == "nanobananapro":
            found[name] = NanoBananaProProvider(config, client, files)
        else:
            found[name] = _ADAPTERS[name](config, client)
    return {name: found[name] for name in enabled_providers(settings)}
