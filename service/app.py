"""``create_app(settings)``: the one place that wires the core, the store, the providers, the
workers and the web edge."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount

from service.assets.keeper import Assets, UploadFiles, asset_links, build_assets
from service.assets.mirror import Mirror
from service.core.clock import Clock, system_clock
from service.core.secretbox import SecretBox
from service.core.tasks import Linker
from service.core.tokens import CallbackTokens
from service.delivery.sender import Sender
from service.delivery.ssrf import TargetPolicy
from service.delivery.worker import DeliveryWorker
from service.endpoints import EndpointPolicy
from service.errors import ConfigError, StoreUnavailable
from service.logs import get_logger
from service.metrics import Metrics
from service.moderation.external import ExternalModeration
from service.providers.base import ReferenceFiles
from service.providers.registry import build_providers, enabled_providers, simulator_base
from service.providers.simulator import SimulatorConfig, create_simulator_app
from service.retention import Retention
from service.settings import Settings
from service.store.base import Store
from service.store.postgres.notify import PgWakeListener
from service.store.postgres.store import PostgresStore
from service.store.sqlite import SqliteStore
from service.upstream import Upstream
from service.usecases import TaskPolicy
from service.wakeup import WakeSender, wake_address, wake_loops
from service.web.context import Services
from service.web.errors import EXCEPTION_HANDLERS
from service.web.middleware import RequestContext
from service.web.openapi import build_spec
from service.web.ratelimit import KeyLimiter, RateLimitHeaders
from service.web.routes import ROUTES
from service.workers import Waker, Workers

log = get_logger("taskhook.app")


def open_store(settings: Settings, *, migrate: bool | None = None) -> SqliteStore | PostgresStore:
    """The store the settings describe (not yet opened), sealing endpoint secrets with the
    current secret key and opening them with any configured one. ``migrate`` overrides
    ``[storage] migrate_on_start``."""
    storage = settings.storage
    migrating = storage.migrate_on_start if migrate is None else migrate
    if storage.is_postgres:
        return PostgresStore(
            storage.url,
            secrets=secret_box(settings),
            pool_size=storage.pool_size,
            migrate=migrating,
        )
    return SqliteStore(
        settings.storage.database_path,
        busy_timeout_ms=settings.storage.busy_timeout_ms,
        synchronous=settings.storage.synchronous,
        secrets=secret_box(settings),
        migrate=migrating,
    )


#: how long a starting process waits for its database (a replica that starts while PostgreSQL
#: restarts should come up with it, not exit)
STARTUP_WAIT_S = 60.0


async def open_when_ready(store: Store, wait_s: float = STARTUP_WAIT_S) -> list[str]:
    """``store.open()``, retried with backoff while the database is unavailable, for up to
    ``wait_s``; returns the migrations applied."""
    deadline = time.monotonic() + wait_s
    delay = 0.2
    while True:
        try:
            return await store.open()
        except StoreUnavailable as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("db.waiting", error=exc.message, retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def secret_box(settings: Settings) -> SecretBox:
    """Seals with ``TASKHOOK_SECRET_KEY``; opens with it or ``TASKHOOK_SECRET_KEY_PREVIOUS``."""
    return SecretBox.from_keys(
        settings.secret_key.reveal(), [k.reveal() for k in settings.previous_secret_keys]
    )


def provider_client(settings: Settings) -> httpx.AsyncClient:
    """The one client all provider calls share: no redirects, no proxies from the environment."""
    return httpx.AsyncClient(
        timeout=float(settings.upstream.request_timeout_seconds),
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
    )


def moderation_client(settings: Settings) -> httpx.AsyncClient:
    """The client of the external moderation stage; like the providers', it follows no
    redirects (one could carry the key elsewhere) and takes no proxies from the environment."""
    return httpx.AsyncClient(
        timeout=settings.external_moderation.timeout_seconds,
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
    )


def build_upstream(
    settings: Settings,
    store: Store,
    client: httpx.AsyncClient,
    clock: Clock,
    notify: Callable[[], None] = lambda: None,
    link: Linker | None = None,
    files: ReferenceFiles | None = None,
) -> Upstream:
    """``link`` mints result links for events (default: signed with the settings' keys);
    ``files`` reads uploads for providers that take files."""
    keys = settings.signing_keys
    return Upstream(
        store=store,
        providers=build_providers(settings, client, files),
        tokens=CallbackTokens(keys, settings.upstream.token_max_age_seconds, clock),
        settings=settings.upstream,
        public_base=settings.service.public_base,
        clock=clock,
        link=asset_links(settings, clock).url if link is None else link,
        notify=notify,
    )


@dataclass(frozen=True)
class Background:
    """The worker side of the service: what ``serve`` runs beside the API, and ``worker`` alone."""

    upstream: Upstream
    workers: Workers
    sender: Sender
    waker: Waker
    assets: Assets

    async def close(self) -> None:
        await self.workers.stop()
        await self.sender.close()
        await self.assets.close()


def build_background(
    settings: Settings,
    store: Store,
    client: httpx.AsyncClient,
    clock: Clock,
    metrics: Metrics | None = None,
    forward: Callable[[bytes], None] | None = None,
) -> Background:
    """``metrics``: the registry the delivery worker counts into (the app's, so ``/metrics``
    shows it; ``worker`` alone has no ``/metrics`` and passes none). ``forward``: wakes a
    worker in another process too (see ``Waker``)."""
    waker = Waker(forward)
    assets = build_assets(settings, clock)
    files = UploadFiles(store, assets.store)
    upstream = build_upstream(
        settings, store, client, clock, waker.wake_delivery, assets.links.url, files
    )
    sender = Sender(
        settings.delivery, TargetPolicy.from_settings(settings.delivery.allowed_networks)
    )
    metrics = Metrics() if metrics is None else metrics
    delivery = DeliveryWorker(store, sender, settings.delivery, clock, metrics=metrics)
    retention = Retention(store, settings.retention, clock, assets.store)
    mirror = Mirror(upstream, assets)
    workers = Workers(upstream, delivery, settings.workers, waker, retention, mirror)
    return Background(upstream, workers, sender, waker, assets)


def fleet_listener(settings: Settings, waker: Waker) -> PgWakeListener | None:
    """On PostgreSQL, what wakes this process's workers when any process (on any host) commits
    work for them; ``None`` on SQLite (``service.wakeup`` does it there, on one host)."""
    if not settings.storage.is_postgres:
        return None
    return PgWakeListener(settings.storage.url, wake_loops(waker))


#: what switches each provider on, for the message when none is
_ENABLE_HINT = (
    "set TASKHOOK_KIE_BASE_URL (or TASKHOOK_BANANA2_BASE_URL, TASKHOOK_NANOBANANAPRO_BASE_URL), "
    "or switch the simulator on with TASKHOOK__SIMULATOR__ENABLED=true"
)


def default_provider(settings: Settings, providers: tuple[str, ...]) -> str:
    """``tasks.default_provider``, or when it is empty the first of ``tasks.providers`` enabled.

    Production's defaults name none: the simulator is off there, and which real provider an
    operator configures is theirs to say, once, by its base URL."""
    chosen = settings.tasks.default_provider
    if not chosen:
        enabled = [name for name in settings.tasks.providers if name in providers]
        if not enabled:
            raise ConfigError(f"no provider is enabled: {_ENABLE_HINT}")
        return enabled[0]
    if chosen not in providers:
        raise ConfigError(
            f"tasks.default_provider: {chosen!r} is not enabled "
            f"(enabled: {', '.join(providers) or 'none'}); {_ENABLE_HINT}"
        )
    return chosen


def task_policy(
    settings: Settings,
    providers: tuple[str, ...],
    external_moderation: ExternalModeration | None = None,
) -> TaskPolicy:
    chosen = default_provider(settings, providers)
    return TaskPolicy(
        tasks=replace(settings.tasks, default_provider=chosen, providers=providers),
        pricing=settings.pricing,
        moderation=settings.moderation,
        idempotency_ttl_ms=settings.api.idempotency_ttl_seconds * 1000,
        external_moderation=external_moderation,
        public_base=settings.service.public_base,
    )


def simulator_config(settings: Settings, public_url: str) -> SimulatorConfig:
    """The simulator the settings describe, reachable at ``public_url``: mounted by ``serve``
    or run alone by ``python -m service simulator``."""
    api_key = settings.simulator.api_key
    return SimulatorConfig(
        public_url=public_url,
        webhook_secret=settings.simulator.secret.reveal(),
        api_key=None if api_key is None else api_key.reveal(),
        latency_ms=settings.simulator.latency_ms,
        progress_steps=settings.simulator.progress_steps,
        failure_rate=settings.simulator.failure_rate,
        callback_policy=TargetPolicy.from_settings(settings.delivery.allowed_networks),
        max_pending_callbacks=settings.simulator.max_pending_callbacks,
        image_faults=settings.simulator.image_faults,
    )


def create_app(
    settings: Settings, *, clock: Clock = system_clock, run_workers: bool | None = None
) -> Starlette:
    """An ASGI app for ``settings``. Its lifespan opens (and migrates) the store, and runs the
    submitter, reconciler and delivery worker unless ``run_workers`` (default:
    ``workers.in_serve``) says not."""
    policy = task_policy(settings, enabled_providers(settings))  # first: it may refuse to start
    store: Store = open_store(settings)
    client = provider_client(settings)
    moderating = moderation_client(settings) if settings.external_moderation.enabled else None
    metrics = Metrics()
    with_workers = settings.workers.in_serve if run_workers is None else run_workers
    # On SQLite, without its own workers, this process wakes the `worker` process's after a
    # commit; on PostgreSQL every commit that queues work notifies, and workers listen.
    wake_sender = (
        None
        if with_workers or settings.storage.is_postgres
        else WakeSender(wake_address(settings.storage.database_path))
    )
    forward = None if wake_sender is None else wake_sender.send
    background = build_background(settings, store, client, clock, metrics, forward)
    listener = fleet_listener(settings, background.waker) if with_workers else None
    limiter = KeyLimiter.from_settings(settings.api)
    upstream, workers = background.upstream, background.workers
    simulator = create_simulator_app(simulator_config(settings, simulator_base(settings)))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        applied = await open_when_ready(store)
        if applied:
            log.info("db.migrated", applied=applied)
        if with_workers:
            if listener is not None:
                listener.start()
            workers.start()
        log.info(
            "app.started",
            environment=settings.service.environment,
            providers=sorted(upstream.providers),
            workers=with_workers,
            external_moderation=moderating is not None,
        )
        try:
            yield
        finally:
            if listener is not None:
                await listener.close()
            await background.close()
            if wake_sender is not None:
                wake_sender.close()
            await simulator.state.simulator.aclose()
            await client.aclose()
            if limiter is not None:
                await limiter.close()
            if moderating is not None:
                await moderating.aclose()
            await store.close()
            log.info("app.stopped")

    routes: list[BaseRoute] = list(ROUTES)
    if settings.simulator.enabled:
        routes.append(Mount("/simulator", simulator))
    app = Starlette(
        routes=routes,
        middleware=[Middleware(RequestContext), Middleware(RateLimitHeaders)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # "/v1/tasks/" is a 404 in the error shape, not a 307
    second_stage = (
        None if moderating is None else ExternalModeration(settings.external_moderation, moderating)
    )
    policy = replace(policy, external_moderation=second_stage)
    app.state.services = Services(
        settings=settings,
        store=store,
        clock=clock,
        policy=policy,
        upstream=upstream,
        waker=background.waker,
        endpoints=EndpointPolicy(
            targets=TargetPolicy.from_settings(settings.delivery.allowed_networks),
            secret_overlap_ms=settings.delivery.secret_overlap_seconds * 1000,
        ),
        assets=background.assets,
        limiter=limiter,
    )
    app.state.metrics = metrics
    app.state.openapi = build_spec(list(settings.pricing.models), list(policy.tasks.providers))
    return app
