"""Where asset bytes live: one small interface, the local filesystem behind it by default.

Bytes are content-addressed: the key is the SHA-256 of the bytes (hex), so identical images are
kept once however many tasks or uploads name them, and a key never changes meaning. A blob is
written from a *staged* file — a complete, verified file under ``staging`` (on the same
filesystem as the file store, so the final step is a rename) — in one atomic step: a reader
sees all of a blob or none of it, and a worker killed half-way leaves only a staged file,
which nothing references and ``sweep_staging`` removes.

Reads are streamed in chunks of ``CHUNK`` bytes over ``[start, end)``, never the whole blob into
memory.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import anyio

from service.errors import TaskhookError
from service.store.permissions import create_private_dir, secure_data_dir

#: bytes per read when streaming a blob out
CHUNK = 256 * 1024
#: staged files older than this are a killed worker's leftovers
STALE_STAGING_S = 3600.0


class AssetStoreError(TaskhookError):
    """The asset store could not be reached or refused an operation (503: try again)."""

    status_code = 503
    code = "asset_store_unavailable"


class AssetExpired(TaskhookError):
    """The asset's bytes are no longer kept (retention removed them): 410."""

    status_code = 410
    code = "asset_expired"


class BlobMissing(AssetExpired):
    """No blob under that key (it was deleted by retention, or never written)."""


class AssetStore(Protocol):
    """The bytes of assets, by SHA-256 key."""

    #: a directory on local disk where downloads and uploads are staged before ``put``
    staging: Path

    async def put(self, key: str, staged: Path, content_type: str) -> None:
        """Keep ``staged``'s bytes under ``key``, atomically; ``staged`` is consumed (moved
        or deleted). Putting a key that exists keeps the existing blob (same bytes)."""
        ...

    async def size(self, key: str) -> int | None:
        """The blob's length, or ``None`` when there is none."""
        ...

    def read(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """The bytes ``[start, end)`` of the blob, in chunks; ``BlobMissing`` if it is gone."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the blob (no error if there is none)."""
        ...

    async def close(self) -> None: ...


def check_key(key: str) -> str:
    """A key is 64 lower-case hex digits (a SHA-256): nothing else reaches a path or a URL."""
    if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
        raise ValueError(f"not an asset key: {key[:80]!r}")
    return key


def sweep_staging(staging: Path, now_s: float | None = None) -> int:
    """Remove staged files a killed process left behind; returns how many. Files younger than
    ``STALE_STAGING_S`` may be a live download's and are left."""
    now_s = time.time() if now_s is None else now_s
    removed = 0
    for path in staging.glob("*.part"):
        try:
            if now_s - path.stat().st_mtime > STALE_STAGING_S:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


class FileAssetStore:
    """Blobs as files under ``root`` (``root/ab/abcdef…``), staged under ``root/.staging``.

    ``durable``: each blob (and its directory entry) is fsynced before ``put`` returns, so a
    task that succeeded on it keeps it through a power cut — ``[storage] synchronous = FULL``,
    as production runs; ``NORMAL`` (dev) leaves it to the kernel, like SQLite's WAL there."""

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.root = root
        self._durable = durable
        self.staging = root / ".staging"
        secure_data_dir(root)  # the data dir's own rule: images are customer data
        secure_data_dir(self.staging)

    def _path(self, key: str) -> Path:
        check_key(key)
        return self.root / key[:2] / key

    async def put(self, key: str, staged: Path, content_type: str) -> None:
        await asyncio.to_thread(self._put, self._path(key), staged)

    def _put(self, final: Path, staged: Path) -> None:
        if final.exists():
            staged.unlink(missing_ok=True)
            return
        create_private_dir(final.parent)
        if not self._durable:
            os.replace(staged, final)
            return
        with staged.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(staged, final)
        directory = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    async def size(self, key: str) -> int | None:
        try:
            return (await anyio.Path(self._path(key)).stat()).st_size
        except FileNotFoundError:
            return None

    async def read(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        try:
            handle = await anyio.open_file(self._path(key), "rb")
        except FileNotFoundError:
            raise BlobMissing("The asset's bytes are gone.") from None
        async with handle:
            await handle.seek(start)
            left = end - start
            while left > 0:
                chunk = await handle.read(min(CHUNK, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    async def close(self) -> None:
        return None
