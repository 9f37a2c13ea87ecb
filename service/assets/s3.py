"""The asset store on S3 or anything that speaks its API (MinIO, R2, Ceph, Garage…).

Built on obstore — Python bindings to Rust's ``object_store`` — rather than aiobotocore:
its calls are natively async (no botocore underneath, no thread pool), a ranged GET is
streamed in chunks we size, and a put from a local file is a multipart upload when the file
is large, without our code reading it into memory.

Keys map to objects ``{prefix}/{key}``. A put is atomic by S3's own rules: an object (single
PUT or completed multipart upload) is visible whole or not at all. Blobs are
content-addressed, so two workers putting one key race harmlessly: both write the same bytes.

Errors: a missing object is ``BlobMissing`` on ``read``, ``None`` on ``size`` and nothing on
``delete``; anything else obstore raises (network, credentials, a refusal) becomes
``AssetStoreError``. Messages are scrubbed of the credentials in case a layer below echoes
its configuration.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import anyio
import obstore
from obstore.exceptions import BaseError
from obstore.store import S3Store

from service.assets.store import CHUNK, AssetStoreError, BlobMissing, check_key
from service.settings import S3Settings

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig, S3Config

#: a store that is down should answer 503 within seconds, not after object_store's default
#: three minutes of retries; the client retries the whole request anyway
RETRY: RetryConfig = {
    "max_retries": 2,
    "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=1)},
    "retry_timeout": timedelta(seconds=10),
}
#: object_store's default 30 s covers a whole request, body included: too short for a large
#: blob streamed out to a slow client, so bound the request loosely and a stall tightly instead
CLIENT: ClientConfig = {
    "connect_timeout": timedelta(seconds=5),
    "read_timeout": timedelta(seconds=30),
    "timeout": timedelta(hours=1),
}


class S3AssetStore:
    """Blobs as objects in one bucket, staged on local disk under ``staging`` before ``put``."""

    def __init__(self, settings: S3Settings, staging: Path) -> None:
        self.staging = staging
        self._prefix = settings.prefix.strip("/")
        self._bucket = settings.bucket
        self._secrets = tuple(
            secret.reveal()
            for secret in (settings.secret_access_key, settings.access_key_id)
            if secret is not None and secret.reveal()
        )
        config: S3Config = {"region": settings.region}
        client = CLIENT.copy()
        if settings.endpoint_url:
            config["endpoint"] = settings.endpoint_url
            # a custom endpoint rarely has per-bucket DNS names: address the bucket by path
            config["virtual_hosted_style_request"] = False
            client["allow_http"] = settings.endpoint_url.startswith("http://")
        if settings.access_key_id is not None:
            config["access_key_id"] = settings.access_key_id.reveal()
        if settings.secret_access_key is not None:
            config["secret_access_key"] = settings.secret_access_key.reveal()
        self._store = S3Store(
            settings.bucket, config=config, client_options=client, retry_config=RETRY
        )

    def _path(self, key: str) -> str:
        check_key(key)
        return f"{self._prefix}/{key}" if self._prefix else key

    def _fail(self, operation: str, key: str, exc: BaseError) -> NoReturn:
        # obstore appends the Rust error's Debug dump: long, and nothing a reader needs
        detail = str(exc).split("\n\nDebug source:")[0]
        for secret in self._secrets:
            detail = detail.replace(secret, "**********")
        raise AssetStoreError(
            f"S3 {operation} of asset {key[:12]}… in bucket {self._bucket!r} failed: "
            f"{type(exc).__name__}: {detail[:500]}"
        ) from None

    async def put(self, key: str, staged: Path, content_type: str) -> None:
        """Upload ``staged`` (skipped when the object exists: same key, same bytes), then
        delete it. A failed upload leaves ``staged`` in place so the caller can retry it;
        ``sweep_staging`` removes it if nobody does."""
        path = self._path(key)
        if await self.size(key) is None:
            try:
                await obstore.put_async(
                    self._store,
                    path,
                    staged,
                    attributes={"Content-Type": content_type},
                )
            except BaseError as exc:
                self._fail("put", key, exc)
        await anyio.Path(staged).unlink(missing_ok=True)

    async def size(self, key: str) -> int | None:
        try:
            meta = await obstore.head_async(self._store, self._path(key))
        except FileNotFoundError:  # obstore's NotFoundError is deprecated for this
            return None
        except BaseError as exc:
            self._fail("head", key, exc)
        return meta["size"]

    async def read(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        path = self._path(key)
        if end <= start:
            return
        try:
            result = await obstore.get_async(self._store, path, options={"range": (start, end)})
            async for chunk in result.stream(min_chunk_size=CHUNK):
                yield chunk
        except FileNotFoundError:
            raise BlobMissing("The asset's bytes are gone.") from None
        except BaseError as exc:
            self._fail("get", key, exc)

    async def delete(self, key: str) -> None:
        try:
            await obstore.delete_async(self._store, self._path(key))
        except FileNotFoundError:
            return
        except BaseError as exc:
            self._fail("delete", key, exc)

    async def close(self) -> None:
        """Nothing to release: the client's connection pool goes with the store object."""
