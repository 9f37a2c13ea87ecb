"""SQL for assets (kept images) and mirror jobs (results waiting to be kept)."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict

from service.core.assets import Asset, ClaimedMirror, MirrorJob
from service.core.ledger import Result
from service.store.rows import Row, Sql, to_json

ASSET_COLUMNS = (
    "id, account_id, kind, task_id, result_index, sha256, content_type, width, height, bytes,"
    " source_url, created_at, purged_at"
)
MIRROR_COLUMNS = "task_id, account_id, sources, attempts, next_attempt_at, created_at, last_error"


def asset_from_row(row: Row) -> Asset:
    return Asset(
        id=row["id"], account_id=row["account_id"], kind=row["kind"], sha256=row["sha256"],
        content_type=row["content_type"], width=row["width"], height=row["height"],
        bytes=row["bytes"], created_at=row["created_at"], task_id=row["task_id"],
        result_index=row["result_index"], source_url=row["source_url"],
        purged_at=row["purged_at"],
    )  # fmt: skip


def mirror_from_row(row: Row) -> MirrorJob:
    return MirrorJob(
        task_id=row["task_id"], account_id=row["account_id"],
        sources=tuple(Result(**r) for r in json.loads(row["sources"])),
        attempts=row["attempts"], next_attempt_at=row["next_attempt_at"],
        created_at=row["created_at"], last_error=row["last_error"],
    )  # fmt: skip


class AssetQueries(Sql):
    # -- assets ------------------------------------------------------------------------------

    async def insert_asset(self, asset: Asset) -> None:
        await self._conn.execute(
            f"INSERT INTO assets ({ASSET_COLUMNS})"  # noqa: S608
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                asset.id, asset.account_id, asset.kind, asset.task_id, asset.result_index,
                asset.sha256, asset.content_type, asset.width, asset.height, asset.bytes,
                asset.source_url, asset.created_at, asset.purged_at,
            ),
        )  # fmt: skip

    async def get_asset(self, asset_id: str) -> Asset | None:
        row = await self._one(
            f"SELECT {ASSET_COLUMNS} FROM assets WHERE id = ?",  # noqa: S608
            (asset_id,),
        )
        return asset_from_row(row) if row else None

    async def blob_referenced(self, sha256: str) -> bool:
        row = await self._one(
            "SELECT 1 FROM assets WHERE sha256 = ? AND purged_at IS NULL LIMIT 1", (sha256,)
        )
        return row is not None

    async def purge_assets(self, cutoff_ms: int, now_ms: int, limit: int) -> tuple[int, list[str]]:
        """Mark up to ``limit`` live assets created before ``cutoff_ms`` purged, oldest first;
        returns how many, and the blob keys (SHA-256) no live asset references any more."""
        rows = await self._all(
            "UPDATE assets SET purged_at = ? WHERE id IN ("  # noqa: S608
            " SELECT id FROM assets WHERE purged_at IS NULL AND created_at < ?"
            f" ORDER BY created_at LIMIT ?{self._skip_locked}) RETURNING sha256",
            (now_ms, cutoff_ms, limit),
        )
        keys = sorted({row["sha256"] for row in rows})
        orphans = []
        for key in keys:
            if not await self.blob_referenced(key):
                orphans.append(key)
        return len(rows), orphans

    # -- mirror jobs -------------------------------------------------------------------------

    async def insert_mirror(self, job: MirrorJob) -> bool:
        """Queue a task's results for keeping; False if it already has a job (a duplicate
        success: the job already under way counts)."""
        cursor = await self._conn.execute(
            f"INSERT INTO mirrors ({MIRROR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
            " ON CONFLICT (task_id) DO NOTHING",
            (
                job.task_id, job.account_id, to_json([asdict(r) for r in job.sources]),
                job.attempts, job.next_attempt_at, job.created_at, job.last_error,
            ),
        )  # fmt: skip
        return cursor.rowcount == 1

    async def claim_due_mirrors(
        self, now_ms: int, lease_ms: int, limit: int
    ) -> list[ClaimedMirror]:
        token = secrets.token_hex(8)
        rows = await self._all(
            "UPDATE mirrors SET lease_until = ?, claim_token = ? WHERE task_id IN ("  # noqa: S608
            " SELECT task_id FROM mirrors WHERE next_attempt_at <= ?"
            " AND (lease_until IS NULL OR lease_until <= ?)"
            f" ORDER BY next_attempt_at LIMIT ?{self._skip_locked})"
            f" RETURNING {MIRROR_COLUMNS}",
            (now_ms + lease_ms, token, now_ms, now_ms, limit),
        )
        return [ClaimedMirror(mirror_from_row(r), token) for r in rows]

    async def retry_mirror(
        self, claimed: ClaimedMirror, next_attempt_at: int, attempts: int, error: str
    ) -> bool:
        """Give a claimed job back to try again later; False if the claim was lost."""
        cursor = await self._conn.execute(
            "UPDATE mirrors SET next_attempt_at = ?, attempts = ?, last_error = ?,"
            " lease_until = NULL, claim_token = NULL WHERE task_id = ? AND claim_token = ?",
            (next_attempt_at, attempts, error, claimed.job.task_id, claimed.claim_token),
        )
        return cursor.rowcount == 1

    async def finish_mirror(self, claimed: ClaimedMirror) -> bool:
        """The job is settled (the task succeeded or failed); False if the claim was lost."""
        cursor = await self._conn.execute(
            "DELETE FROM mirrors WHERE task_id = ? AND claim_token = ?",
            (claimed.job.task_id, claimed.claim_token),
        )
        return cursor.rowcount == 1

    async def mirror_pending(self, task_id: str) -> bool:
        row = await self._one("SELECT 1 FROM mirrors WHERE task_id = ?", (task_id,))
        return row is not None

    async def count_mirrors(self) -> int:
        row = await self._one("SELECT COUNT(*) FROM mirrors", ())
        return int(row[0]) if row else 0
