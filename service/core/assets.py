"""Assets (kept images: mirrored results and uploads) and mirror jobs, as the store holds them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.core.clock import to_rfc3339
from service.core.ledger import Result

ASSET_KINDS = ("result", "upload")


@dataclass(frozen=True)
class Asset:
    """One kept image. Its bytes are in the asset store under ``sha256``; ``purged_at`` is set
    once retention has deleted them (the row stays, so the task keeps what it was)."""

    id: str
    account_id: str
    kind: str
    sha256: str
    content_type: str
    width: int
    height: int
    bytes: int
    created_at: int
    task_id: str | None = None
    result_index: int | None = None
    source_url: str | None = None
    purged_at: int | None = None


@dataclass(frozen=True)
class MirrorJob:
    """A task whose provider reported success, waiting for its results to be kept."""

    task_id: str
    account_id: str
    sources: tuple[Result, ...]
    attempts: int
    next_attempt_at: int
    created_at: int
    last_error: str | None = None


@dataclass(frozen=True)
class ClaimedMirror:
    job: MirrorJob
    claim_token: str


def upload_object(asset: Asset, url: str) -> dict[str, Any]:
    """The contract's upload object."""
    return {
        "id": asset.id,
        "url": url,
        "content_type": asset.content_type,
        "width": asset.width,
        "height": asset.height,
        "bytes": asset.bytes,
        "sha256": asset.sha256,
        "created_at": to_rfc3339(asset.created_at),
    }
