"""The background loops: the submitter, the reconciler, the delivery worker, the mirror loop
(which keeps results: ``service.assets.mirror``) and retention.

Each loop claims a batch, works it, and sleeps until woken (this process just committed work
for it) or until ``idle_poll_ms`` passes (work committed by another process, or a deadline that
came due). A full batch means there is probably more: it goes again at once. An exception in a
round is logged and the loop carries on: a worker that dies quietly is worse than one that
complains. A round the database was not there for (``StoreUnavailable``, ``StoreBusy``) is
deferred: logged once (``workers.round_deferred``, a warning, no traceback), retried with a
backoff that doubles up to ``DEFERRED_MAX_S``, and ``workers.round_resumed`` when one succeeds.
Nothing is lost meanwhile: what a round had claimed comes back when its lease runs out.
Retention is the slow one: it purges everything due in one round (in batches of its own), then
sleeps ``retention.interval_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from service.assets.mirror import Mirror
from service.delivery.worker import DeliveryWorker
from service.errors import StoreBusy, StoreUnavailable
from service.logs import get_logger
from service.retention import Retention
from service.settings import WorkerSettings
from service.upstream import Upstream, reconcile_due, submit_due

log = get_logger("taskhook.workers")


#: the longest wait between two rounds while the database is away (the first is the idle poll)
DEFERRED_MAX_S = 5.0

SUBMITTER = b"s"
DELIVERY = b"d"


class Waker:
    """Wakes the loops after a commit: a new task to submit, new deliveries to send.

    ``forward`` also tells a worker in another process (``wakeup.WakeSender.send``), for
    ``web`` when the loops run in ``worker``."""

    def __init__(self, forward: Callable[[bytes], None] | None = None) -> None:
        self.submitter = asyncio.Event()
        self.delivery = asyncio.Event()
        #: the mirror loop: a callback or poll that was a provider's success queued a job
        self.mirror = asyncio.Event()
        self._forward = forward

    def wake(self) -> None:
        """A task was queued (and its event written): both loops have work."""
        self.submitter.set()
        self.delivery.set()
        self.mirror.set()
        if self._forward is not None:
            self._forward(SUBMITTER)

    def wake_delivery(self) -> None:
        """Deliveries were written (a callback, a poll, a ping) and perhaps a mirror job: the
        submitter has nothing new."""
        self.delivery.set()
        self.mirror.set()
        if self._forward is not None:
            self._forward(DELIVERY)


class Workers:
    def __init__(
        self,
        up: Upstream,
        delivery: DeliveryWorker,
        settings: WorkerSettings,
        waker: Waker,
        retention: Retention | None = None,
        mirror: Mirror | None = None,
    ) -> None:
        self._up = up
        self._mirror = mirror
        self._delivery = delivery
        self._settings = settings
        self._waker = waker
        self._retention = retention
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        batch, concurrency = self._settings.batch_size, self._settings.concurrency
        idle_s = self._settings.idle_poll_ms / 1000
        # (name, one round, what wakes it early, a round this big goes again at once, idle wait)
        loops: list[tuple[str, Callable[[], Awaitable[int]], asyncio.Event, int, float]] = [
            ("submitter", lambda: submit_due(self._up, batch, concurrency),
             self._waker.submitter, batch, idle_s),
            ("reconciler", lambda: reconcile_due(self._up, batch, concurrency),
             asyncio.Event(), batch, idle_s),
            ("delivery", lambda: self._delivery.deliver_due(self._waker.delivery),
             self._waker.delivery,
             self._delivery.settings.batch_size, idle_s),
        ]  # fmt: skip
        if self._mirror is not None:
            loops.append(
                ("mirror", self._mirror.mirror_due, self._waker.mirror,
                 self._mirror.batch_size, idle_s)
            )  # fmt: skip
        if self._retention is not None:
            # A round purges all that is due, so it never goes again at once (full = 0).
            loops.append(
                ("retention", self._retention.run, asyncio.Event(), 0, self._retention.interval_s)
            )
        self._tasks = [
            asyncio.create_task(self._loop(name, step, wake, full, idle), name=f"taskhook-{name}")
            for name, step, wake, full, idle in loops
        ]
        log.info("workers.started", loops=[t.get_name() for t in self._tasks])

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _loop(
        self,
        name: str,
        step: Callable[[], Awaitable[int]],
        wake: asyncio.Event,
        full: int,
        idle_s: float,
    ) -> None:
        deferred = 0  # rounds in a row the database was not there for
        while True:
            wake.clear()
            try:
                handled = await step()
            except (StoreUnavailable, StoreBusy) as exc:
                if not deferred:
                    log.warning("workers.round_deferred", loop=name, code=exc.code,
                                error=exc.message)  # fmt: skip
                deferred += 1
                await asyncio.sleep(deferred_wait(idle_s, deferred))
                continue
            except Exception:
                log.exception("workers.round_failed", loop=name)
                handled = 0
            if deferred:
                log.info("workers.round_resumed", loop=name, deferred_rounds=deferred)
                deferred = 0
            if full and handled >= full:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), idle_s)


def deferred_wait(idle_s: float, deferred: int) -> float:
    """The wait after the ``deferred``-th round in a row the database was away for: the idle
    poll (at least a tenth of a second), doubling, at most ``DEFERRED_MAX_S`` — the database is
    asked again soon after it returns, without a storm of attempts while it is gone."""
    wait: float = max(idle_s, 0.1) * 2.0 ** (deferred - 1)
    return min(wait, DEFERRED_MAX_S)
