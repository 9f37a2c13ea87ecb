"""The background loops: the submitter and the reconciler.

Each loop claims a batch, works it, and sleeps until woken (a task was just queued in this
process) or until ``idle_poll_ms`` passes (work queued by another process, or a deadline that
came due). A full batch means there is probably more: it goes again at once. An exception in a
round is logged and the loop carries on: a worker that dies quietly is worse than one that
complains.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from service.logs import get_logger
from service.settings import WorkerSettings
from service.upstream import Upstream, reconcile_due, submit_due

log = get_logger("taskhook.workers")


class Workers:
    def __init__(self, up: Upstream, settings: WorkerSettings) -> None:
        self._up = up
        self._settings = settings
        self._submit_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def wake_submitter(self) -> None:
        """A task was queued: submit it now rather than at the next idle poll."""
        self._submit_wake.set()

    def start(self) -> None:
        batch, concurrency = self._settings.batch_size, self._settings.concurrency
        self._tasks = [
            asyncio.create_task(
                self._loop("submitter", lambda: submit_due(self._up, batch, concurrency),
                           self._submit_wake),
                name="taskhook-submitter",
            ),
            asyncio.create_task(
                self._loop("reconciler", lambda: reconcile_due(self._up, batch, concurrency),
                           asyncio.Event()),
                name="taskhook-reconciler",
            ),
        ]  # fmt: skip
        log.info("workers.started", loops=[t.get_name() for t in self._tasks])

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _loop(
        self, name: str, step: Callable[[], Awaitable[int]], wake: asyncio.Event
    ) -> None:
        idle_s = self._settings.idle_poll_ms / 1000
        while True:
            wake.clear()
            try:
                handled = await step()
            except Exception:
                log.exception("workers.round_failed", loop=name)
                handled = 0
            if handled >= self._settings.batch_size:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), idle_s)
