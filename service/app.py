"""``create_app(settings)``: the one place that wires the core, the store and the web edge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware

from service.core.clock import Clock, system_clock
from service.logs import get_logger
from service.settings import Settings
from service.store.base import Store
from service.store.sqlite import SqliteStore
from service.usecases import TaskPolicy
from service.web.context import Services
from service.web.errors import EXCEPTION_HANDLERS
from service.web.middleware import RequestContext
from service.web.openapi import build_spec
from service.web.routes import ROUTES

log = get_logger("taskhook.app")


def open_store(settings: Settings) -> SqliteStore:
    """The store the settings describe (not yet opened)."""
    return SqliteStore(
        settings.storage.database_path,
        busy_timeout_ms=settings.storage.busy_timeout_ms,
        synchronous=settings.storage.synchronous,
    )


def task_policy(settings: Settings) -> TaskPolicy:
    return TaskPolicy(
        tasks=settings.tasks,
        pricing=settings.pricing,
        moderation=settings.moderation,
        idempotency_ttl_ms=settings.api.idempotency_ttl_seconds * 1000,
    )


def create_app(settings: Settings, *, clock: Clock = system_clock) -> Starlette:
    """An ASGI app for ``settings``. Its lifespan opens (and migrates) the store."""
    store: Store = open_store(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        applied = await store.open()
        if applied:
            log.info("db.migrated", applied=applied)
        log.info("app.started", environment=settings.service.environment)
        try:
            yield
        finally:
            await store.close()
            log.info("app.stopped")

    app = Starlette(
        routes=ROUTES,
        middleware=[Middleware(RequestContext)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # "/v1/tasks/" is a 404 in the error shape, not a 307
    app.state.services = Services(
        settings=settings, store=store, clock=clock, policy=task_policy(settings)
    )
    app.state.openapi = build_spec(list(settings.pricing.models), list(settings.tasks.providers))
    return app
