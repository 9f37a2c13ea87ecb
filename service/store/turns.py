"""``Turns``: the lock a group's transactions take in turn, woken all at once.

``asyncio.Lock`` hands itself on one waiter at a time: each release wakes the next waiter, which
runs only after whatever the loop queued meanwhile (a new request's parsing, an answer on its
way out). For the writer that spread a group's members across the loop: each member's body runs
in a few hundred microseconds and never waits, yet at 500 callbacks/s a group of seven held
SQLite's write lock for 5 ms at the median and 16 ms at p90 — the worker in the other process
waiting all along.

Here a release wakes *every* waiter, and the lock goes strictly in arrival order: a woken waiter
takes it only if it is first in the queue and the lock is free, else it waits to be woken again,
keeping its place. The loop runs woken tasks in the order they were woken, one after another, so
members queued behind a commit run back to back: the first takes the lock, and each later one
finds it free the moment the one before it left. Exclusion and order are ``asyncio.Lock``'s; only
the hand-over is faster. (If holders do wait while holding it, every release wakes every waiter:
quadratic in the queue's length, where the writer's transactions, which wait only for another
process's write lock, keep it short.)
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType


class Turn:
    """A place in line."""

    __slots__ = ("woken",)

    def __init__(self) -> None:
        self.woken: asyncio.Future[None] | None = None


class Turns:
    def __init__(self) -> None:
        self._locked = False
        self._queue: deque[Turn] = deque()  # in arrival order; the head's turn is next

    def locked(self) -> bool:
        return self._locked

    async def acquire(self, turn: Turn | None = None) -> None:
        """Wait for the lock; with ``turn`` (from :meth:`reserve`), from that place in line."""
        if turn is None:
            if not (self._locked or self._queue):
                self._locked = True
                return
            turn = Turn()
            self._queue.append(turn)
        loop = asyncio.get_running_loop()
        try:
            while True:
                if turn.woken is None:
                    turn.woken = loop.create_future()
                await turn.woken
                turn.woken = None
                if not self._locked and self._queue[0] is turn:
                    self._queue.popleft()
                    self._locked = True
                    return
        except BaseException:
            self.forget(turn)
            raise

    def reserve(self) -> Turn:
        """A place at the back of the line, taken now, for a task that has yet to start (the
        group's committer: it must come right after the members already queued, not behind the
        loop's other work). Pass it to :meth:`acquire`, or to :meth:`forget` if it goes unused."""
        turn = Turn()
        turn.woken = asyncio.get_running_loop().create_future()
        self._queue.append(turn)
        self._wake()
        return turn

    def forget(self, turn: Turn) -> None:
        """Give up a place in line (no-op once its lock was taken)."""
        if turn in self._queue:
            self._queue.remove(turn)
            self._wake()  # had it been that place's turn, it is the next one's now

    def release(self) -> None:
        if not self._locked:
            raise RuntimeError("Turns.release() while not held")
        self._locked = False
        self._wake()

    def _wake(self) -> None:
        """Every waiter looks: the head takes the lock, each later one once the one before it
        let go — back to back, as long as no one holds it across a wait."""
        if self._locked:
            return
        for turn in self._queue:
            if turn.woken is not None and not turn.woken.done():
                turn.woken.set_result(None)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
