"""Retention: event payloads and callback bodies older than ``retention.max_age_days`` are
emptied by a periodic job; the ledger is kept.

What is purged, and why in place:

- an event's ``payload`` becomes ``''`` and ``purged_at`` is set. The row stays, so every
  delivery and attempt keeps pointing at a real event and the delivery history stays whole; only
  the body (the part that carries customer data: prompts, metadata, image URLs) goes.
- a callback's ``body`` becomes empty and its ``headers`` ``{}``, ``purged_at`` set. The row
  stays, so ``GET /v1/callbacks`` and a task's timeline still show that it came and what it did
  (verdict, outcome, detail); its body reads as ``""``. A purged callback cannot be replayed.

What is kept: tasks, credit entries, the timeline, deliveries and attempts — the ledger, which
balances and audits depend on. And two kinds of row however old: an event with a delivery still
``pending`` (the worker must still send those exact bytes, and a recovery may retry it), and a
callback still ``pending`` (not yet applied).

With several processes on one database (``web`` and ``worker`` on many hosts), the job runs
once per interval across all of them: each round first claims the job's turn
(``Transaction.claim_job``, a conditional upsert of ``job_runs``), and a process that finds the
turn taken sleeps another interval. A process killed mid-pass leaves the rest for the next
interval's pass (the purge is idempotent and picks up where it stopped).

Each batch is its own short transaction (``retention.batch_size`` rows), so the single writer
is never held for long and API writes slip in between batches. The cutoff is one pure decision
(``retention_cutoff``); the SQL is in ``store.ops_queries``.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from service.assets.store import AssetStore
from service.core.clock import Clock
from service.logs import get_logger
from service.settings import RetentionSettings
from service.store.base import Store, Transaction

log = get_logger("taskhook.retention")

DAY_MS = 86_400_000
#: the job's name in ``job_runs``
JOB = "retention"


def process_name() -> str:
    """Who ran a job, for an operator reading ``job_runs``: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def retention_cutoff(now_ms: int, max_age_days: int) -> int:
    """Rows created strictly before this instant are old enough to purge."""
    return now_ms - max_age_days * DAY_MS


@dataclass(frozen=True)
class Purged:
    events: int
    callbacks: int
    #: assets whose bytes went (``[retention] asset_max_age_days``)
    assets: int = 0

    @property
    def total(self) -> int:
        return self.events + self.callbacks + self.assets


@dataclass(frozen=True)
class Retention:
    store: Store
    settings: RetentionSettings
    clock: Clock
    #: where asset bytes are deleted from (``None``: assets are not purged)
    assets: AssetStore | None = None
    owner: str = field(default_factory=process_name)

    @property
    def interval_s(self) -> float:
        return float(self.settings.interval_seconds)

    async def run(self) -> int:
        """One pass, for the worker loop, if this interval's turn is this process's (else
        another process has it, and nothing is done); returns how many rows were purged."""
        async with self.store.transaction() as tx:
            mine = await tx.claim_job(
                JOB, self.clock(), self.settings.interval_seconds * 1000, self.owner
            )
        if not mine:
            return 0
        return (await self.purge()).total

    async def purge(self) -> Purged:
        """Empty everything past the cutoff, batch by batch, until a batch comes back short."""
        now = self.clock()
        cutoff = retention_cutoff(now, self.settings.max_age_days)
        limit = self.settings.batch_size
        events = await self._batches(lambda tx: tx.purge_event_payloads(cutoff, now, limit))
        callbacks = await self._batches(lambda tx: tx.purge_callback_bodies(cutoff, now, limit))
        assets = await self._purge_assets(now)
        purged = Purged(events, callbacks, assets)
        if purged.total:
            log.info("retention.purged", events=events, callbacks=callbacks, assets=assets,
                     cutoff_ms=cutoff)  # fmt: skip
        return purged

    async def _purge_assets(self, now: int) -> int:
        """Mark old assets purged, batch by batch, and delete each blob once no live asset
        names it (identical bytes are kept once, for every asset that has them)."""
        days = self.settings.asset_max_age_days
        if self.assets is None or days == 0:
            return 0
        cutoff = retention_cutoff(now, days)
        total = 0
        while True:
            async with self.store.transaction() as tx:
                marked, orphans = await tx.purge_assets(cutoff, now, self.settings.batch_size)
            for key in orphans:
                await self.assets.delete(key)
            total += marked
            if marked < self.settings.batch_size:
                return total
            await asyncio.sleep(0)

    async def _batches(self, purge: Callable[[Transaction], Awaitable[int]]) -> int:
        total = 0
        while True:
            async with self.store.transaction() as tx:
                done = await purge(tx)
            total += done
            if done < self.settings.batch_size:
                return total
            await asyncio.sleep(0)  # let a waiting writer take the lock between batches
