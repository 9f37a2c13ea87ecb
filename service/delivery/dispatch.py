"""How one round of the delivery worker spends its connections: lanes, and a recorder.

Claimed deliveries wait in a queue; at most ``concurrency`` lanes (tasks) take them in turn, each
holding its endpoint's slot while it sends. A lane is a request in flight, not a delivery: a task
per delivery, with half of them queued on a semaphore for a free slot, cost 8-15 µs a delivery
in a microbenchmark of just that bookkeeping, against ~2 µs for lanes. A lane hands each
finished attempt to the ``Recorder`` and takes the next delivery at once: waiting for the
outcome's commit (perhaps behind another process's write lock) would leave its connection idle.

The recorder writes the attempts that finished while it wrote the previous ones, all in one
transaction: one attempt at low load, the attempts of one commit's wait under load.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from service.errors import StoreBusy, StoreError, StoreUnavailable
from service.logs import get_logger
from service.store.base import ClaimedDelivery

log = get_logger("taskhook.delivery")

S = TypeVar("S")


class Recorder(Generic[S]):
    """Batches finished attempts: each waits while the batch before it is written, and all that
    finished meanwhile are written together. ``record`` says which of a batch were written."""

    def __init__(self, record: Callable[[list[S]], Awaitable[list[bool]]]) -> None:
        self._record = record
        self._queue: list[tuple[S, asyncio.Future[bool]]] = []
        self._draining: asyncio.Task[None] | None = None

    def submit(self, sent: S) -> asyncio.Future[bool]:
        """Queue ``sent``; the future says whether it was written (or holds why not)."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((sent, done))
        if self._draining is None:
            self._draining = asyncio.create_task(self._drain())
        return done

    async def _drain(self) -> None:
        batch: list[tuple[S, asyncio.Future[bool]]] = []
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    recorded = await self._record([sent for sent, _ in batch])
                except Exception as exc:
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                for (_, done), ok in zip(batch, recorded, strict=True):
                    if not done.done():
                        done.set_result(ok)
        finally:
            self._draining = None
            for _, done in (*batch, *self._queue):  # left only when cancelled, as their
                if not done.done():  # senders are: the leases bring them round again
                    done.cancel()

    async def close(self) -> None:
        """Stop at once; what was not recorded is sent again when its lease runs out."""
        if self._draining is not None:
            self._draining.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._draining


class Lanes(Generic[S]):
    """One round's sending. ``attempt`` sends one claimed delivery (``None``: it was not sent,
    e.g. its lease was lost); ``record`` writes a batch of attempts. ``unfinished`` counts the
    deliveries added and not yet recorded (or given up)."""

    def __init__(
        self,
        attempt: Callable[[ClaimedDelivery, int], Awaitable[S | None]],
        record: Callable[[list[S]], Awaitable[list[bool]]],
        *,
        concurrency: int,
        per_endpoint: int,
    ) -> None:
        self._attempt = attempt
        self._recorder: Recorder[S] = Recorder(record)
        self._concurrency = concurrency
        self._per_endpoint: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(per_endpoint)
        )
        self._queue: deque[tuple[ClaimedDelivery, int]] = deque()
        self._lanes: set[asyncio.Task[None]] = set()
        #: lanes still taking work: one that found the queue empty is out at once (a finished
        #: task leaves ``_lanes`` only when its callbacks run, a loop pass later)
        self._taking = 0
        self.unfinished = 0
        #: the first "database away" error an attempt or a recording met (``None``: none): not
        #: logged per delivery; the round raises it, and the worker loop defers
        self.away: StoreError | None = None
        self._waiter: tuple[int, asyncio.Future[None]] | None = None

    def add(self, claimed: list[ClaimedDelivery], claimed_at: int) -> None:
        """Queue a claim's deliveries, and open lanes for them up to ``concurrency``."""
        self._queue.extend((item, claimed_at) for item in claimed)
        self.unfinished += len(claimed)
        for _ in range(min(self._concurrency - self._taking, len(self._queue))):
            self._taking += 1
            lane = asyncio.create_task(self._lane())
            self._lanes.add(lane)
            lane.add_done_callback(self._lanes.discard)

    async def until_at_most(self, unfinished: int, woken: asyncio.Event | None = None) -> bool:
        """Wait until no more than ``unfinished`` deliveries are left unrecorded — ``False`` —
        or until ``woken`` is set first — ``True``, and the event is cleared: the news is
        taken."""
        if self.unfinished <= unfinished:
            return False
        reached: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiter = (unfinished, reached)
        waiting = asyncio.ensure_future(woken.wait()) if woken is not None else None
        try:
            await asyncio.wait({reached} | ({waiting} if waiting else set()),
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        finally:
            self._waiter = None
            reached.cancel()
            if waiting is not None:
                waiting.cancel()
        if self.unfinished <= unfinished or woken is None or not woken.is_set():
            return False
        woken.clear()
        return True

    async def close(self) -> None:
        """Stop sending and recording at once (a stopping worker: the claims not finished come
        round again when their leases run out)."""
        for lane in self._lanes:
            lane.cancel()
        await asyncio.gather(*self._lanes, return_exceptions=True)
        await self._recorder.close()

    async def _lane(self) -> None:
        try:
            while self._queue:
                await self._take(*self._queue.popleft())
        finally:
            self._taking -= 1

    async def _take(self, item: ClaimedDelivery, claimed_at: int) -> None:
        try:
            async with self._per_endpoint[item.endpoint.id]:
                sent = await self._attempt(item, claimed_at)
        except (StoreUnavailable, StoreBusy) as exc:
            self.away = self.away or exc
            sent = None
        except Exception:
            log.exception("delivery.attempt_crashed", delivery_id=item.delivery.id)
            sent = None
        if sent is None:
            self._finished()
        else:
            self._recorder.submit(sent).add_done_callback(functools.partial(self._recorded, item))

    def _recorded(self, item: ClaimedDelivery, done: asyncio.Future[bool]) -> None:
        failed = None if done.cancelled() else done.exception()
        if isinstance(failed, StoreUnavailable | StoreBusy):
            self.away = self.away or failed
        elif failed is not None:
            log.error("delivery.attempt_crashed", delivery_id=item.delivery.id, exc_info=failed)
        self._finished()

    def _finished(self) -> None:
        self.unfinished -= 1
        waiter = self._waiter
        if waiter is not None and self.unfinished <= waiter[0] and not waiter[1].done():
            waiter[1].set_result(None)
