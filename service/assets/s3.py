"""The asset store on any S3-compatible service (AWS S3, MinIO, Ceph, R2…), through obstore.

Why obstore rather than aiobotocore: it is the Rust ``object_store`` crate (the one Arrow,
DataFusion and Polars use) with a native async API — no botocore, no thread pool — and it
streams ranged GETs chunk by chunk and uploads a local file with multipart on its own, which
is exactly the two things this store does. Its errors are mapped to ours here, and never carry
the credentials (only the object's key is named).

Blobs live at ``{prefix}/{sha256}``. A put is atomic (S3 shows a whole object or none), so a
worker killed mid-upload leaves nothing a reader can see.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import obstore
from obstore.store import S3Store

from service.assets.store import CHUNK, AssetStoreError, BlobMissing, check_key
from service.settings import S3Settings


class S3AssetStore:
    def __init__(self, settings: S3Settings, staging: Path) -> None:
        self.staging = staging
        self._prefix = settings.prefix.strip("/")
        endpoint = settings.endpoint_url
        self._store = S3Store(
            settings.bucket,
            region=settings.region,
            access_key_id=(
                settings.access_key_id.reveal() if settings.access_key_id is not None else None
            ),
            secret_access_key=(
                settings.secret_access_key.reveal()
                if settings.secret_access_key is not None
                else None
            ),
            endpoint=endpoint,
            virtual_hosted_style_request=endpoint is None,
            client_options={"allow_http": bool(endpoint and endpoint.startswith("http://"))},
        )

    def _path(self, key: str) -> str:
        check_key(key)
        return f"{self._prefix}/{key}" if self._prefix else key

    async def put(self, key: str, staged: Path, content_type: str) -> None:
        path = self._path(key)
        try:
            await obstore.put_async(
                self._store, path, staged, attributes={"Content-Type": content_type}
            )
        except Exception as exc:  # obstore raises its own families and OSErrors
            raise _unavailable("put", key, exc) from None
        await anyio.Path(staged).unlink(missing_ok=True)

    async def size(self, key: str) -> int | None:
        path = self._path(key)
        try:
            meta = await obstore.head_async(self._store, path)
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise _unavailable("head", key, exc) from None
        return int(meta["size"])

    async def read(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        path = self._path(key)
        if end <= start:
            return
        try:
            result = await obstore.get_async(self._store, path, options={"range": (start, end)})
            async for chunk in result.stream(min_chunk_size=CHUNK):
                yield bytes(chunk)
        except FileNotFoundError:
            raise BlobMissing("The asset's bytes are gone.") from None
        except BlobMissing:
            raise
        except Exception as exc:
            raise _unavailable("get", key, exc) from None

    async def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            await obstore.delete_async(self._store, path)
        except FileNotFoundError:
            return
        except Exception as exc:
            raise _unavailable("delete", key, exc) from None

    async def close(self) -> None:
        return None


def _unavailable(operation: str, key: str, exc: Exception) -> AssetStoreError:
    # The exception's text may quote the request (never the secret, but keep it short) and
    # names the bucket; the type says what kind of failure it was.
    return AssetStoreError(
        f"The asset store failed to {operation} {key[:12]}…: {type(exc).__name__}"
    )
