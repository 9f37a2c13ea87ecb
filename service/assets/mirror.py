"""The mirror loop: keep each held task's results, then let the task succeed.

A provider's success leaves a mirror job (``core.mirroring``, ``upstream.apply_update``). This
loop claims due jobs under a lease, downloads every result (``download.Downloader``), puts each
into the asset store, and then — in one transaction — records the assets, moves the task to
``succeeded`` with its kept results (the event carries taskhook's links) and deletes the job.
A download that may work later is retried with backoff up to ``[assets] download_attempts``;
one that will not, or retries exhausted, fails the task ``result_unavailable`` (refunded by
the ledger, once).

A worker killed mid-job leaves at most staged files (never served, swept later) and blobs no
asset names yet; its lease runs out and another worker does the whole job again.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence

from service.assets.download import DownloadRefused, DownloadRetryable, Staged
from service.assets.keeper import Assets
from service.assets.store import STALE_STAGING_S, AssetStoreError, sweep_staging
from service.core.assets import Asset, ClaimedMirror
from service.core.ids import new_id
from service.core.ledger import Change, Failure, Outcome, Result, TaskStatus
from service.core.mirroring import kept_result, result_unavailable
from service.core.retry import backoff_ms
from service.core.timeline import EntryKind, TimelineEntry
from service.logs import get_logger
from service.store.base import Transaction
from service.upstream import Upstream, apply_update, in_parallel

log = get_logger("taskhook.mirror")


class _Retry(Exception):
    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class _LostClaim(Exception):
    pass


class Mirror:
    def __init__(
        self, up: Upstream, assets: Assets, rand: Callable[[], float] = random.random
    ) -> None:
        self._up = up
        self._assets = assets
        self._settings = assets.settings
        self._rand = rand
        self._swept_at = 0.0

    @property
    def batch_size(self) -> int:
        return self._settings.batch_size

    async def mirror_due(self) -> int:
        """One round: claim due jobs and work them; returns how many were claimed. Staged
        files a killed process left (never named by an asset) are swept now and then."""
        settings = self._settings
        now_s = self._up.clock() / 1000
        if now_s - self._swept_at > STALE_STAGING_S / 4:
            self._swept_at = now_s
            removed = await asyncio.to_thread(sweep_staging, self._assets.store.staging)
            if removed:
                log.info("mirror.staging_swept", files=removed)
        claimed = await self._up.store.claim_due_mirrors(
            self._up.clock(), settings.lease_seconds * 1000, settings.batch_size
        )
        await in_parallel(
            claimed, self.mirror_one, settings.concurrency, lambda job: job.job.task_id
        )
        return len(claimed)

    async def mirror_one(self, claimed: ClaimedMirror) -> None:
        job = claimed.job
        failure: Failure | None = None
        staged: list[Staged] = []
        source = job.sources[0]
        try:
            for source in job.sources:
                staged.append(await self._keep(source))
        except _Retry as exc:
            attempts = job.attempts + 1
            if attempts < self._settings.download_attempts:
                await self._retry(claimed, attempts, exc)
                return
            failure = result_unavailable(f"{exc.message} (after {attempts} attempts): {source.url}")
        except DownloadRefused as exc:
            # the link is the provider's, as the task's results would have shown it
            failure = result_unavailable(f"{exc.message}: {source.url}")
        try:
            await self._settle(claimed, staged, failure)
        except _LostClaim:
            log.warning("mirror.claim_lost", task_id=job.task_id)

    async def _keep(self, source: Result) -> Staged:
        try:
            staged = await self._assets.downloader.fetch(source.url)
        except DownloadRetryable as exc:
            raise _Retry(exc.message, exc.retry_after_s) from None
        try:
            await self._assets.store.put(staged.sha256, staged.path, staged.info.content_type)
        except AssetStoreError as exc:
            staged.path.unlink(missing_ok=True)
            raise _Retry(f"the asset store failed: {exc.message}") from None
        return staged

    async def _retry(self, claimed: ClaimedMirror, attempts: int, exc: _Retry) -> None:
        settings, now = self._settings, self._up.clock()
        delay = backoff_ms(
            attempts, settings.backoff_base_ms, settings.backoff_max_ms, self._rand(),
            exc.retry_after_s,
        )  # fmt: skip
        async with self._up.store.transaction() as tx:
            if await tx.retry_mirror(claimed, now + delay, attempts, exc.message):
                await _note(tx, claimed, now, f"download attempt {attempts} failed "
                            f"({exc.message}); retry in {delay} ms")  # fmt: skip
        log.info("mirror.retry", task_id=claimed.job.task_id, attempt=attempts, delay_ms=delay,
                 error=exc.message)  # fmt: skip

    async def _settle(
        self, claimed: ClaimedMirror, staged: Sequence[Staged], failure: Failure | None
    ) -> None:
        job, up = claimed.job, self._up
        now = up.clock()
        async with up.store.transaction() as tx:
            task = await tx.get_task_by_id(job.task_id)
            if task is not None and not task.state.status.terminal:
                if failure is None:
                    results = []
                    for index, (source, kept) in enumerate(zip(job.sources, staged, strict=True)):
                        asset = _asset(task.account_id, task.id, index, source, kept, now)
                        await tx.insert_asset(asset)
                        info = kept.info
                        results.append(kept_result(source, asset.id, info.content_type,
                                                   info.width, info.height, kept.size,
                                                   kept.sha256))  # fmt: skip
                    change = Change(TaskStatus.SUCCEEDED, results=tuple(results))
                else:
                    change = Change(TaskStatus.FAILED, failure=failure)
                await apply_update(
                    tx, task, change, now, kind=EntryKind.STATE_CHANGE, source="mirror",
                    link=up.link, next_check=lambda _: None,
                )  # fmt: skip
            if not await tx.finish_mirror(claimed):
                raise _LostClaim
        up.notify()


def _asset(
    account_id: str, task_id: str, index: int, source: Result, kept: Staged, now: int
) -> Asset:
    return Asset(
        id=new_id("ast", now), account_id=account_id, kind="result", sha256=kept.sha256,
        content_type=kept.info.content_type, width=kept.info.width, height=kept.info.height,
        bytes=kept.size, created_at=now, task_id=task_id, result_index=index,
        source_url=source.url,
    )  # fmt: skip


async def _note(tx: Transaction, claimed: ClaimedMirror, now: int, detail: str) -> None:
    task = await tx.get_task_by_id(claimed.job.task_id)
    if task is None:
        return
    state = task.state
    await tx.insert_timeline(
        TimelineEntry(
            id=new_id("tl", now), task_id=task.id, kind=EntryKind.STATE_CHANGE, source="mirror",
            outcome=Outcome.REJECTED, status=state.status, progress=state.progress,
            sequence=state.sequence, detail=detail, created_at=now,
        )
    )  # fmt: skip
