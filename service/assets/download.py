"""Downloading a result image into a staged file: streamed, guarded, capped and checked.

The body goes to disk chunk by chunk (never whole into memory) while its SHA-256 is computed;
the first bytes must be an image's magic number (an HTML error page served with 200 is refused
after a dozen bytes, not after megabytes); a declared or actual size past ``[assets]
max_bytes`` is refused; the finished file's type and dimensions are read from its header. The
SSRF guard is the endpoints' (``service.delivery.ssrf``) widened by ``[assets]
allowed_networks``; redirects are followed by hand, at most ``MAX_REDIRECTS``, each target
checked like the first.

Two kinds of failure, as for provider calls: ``DownloadRetryable`` (5xx, 429, 408, timeouts,
connection errors: try again later, honouring ``Retry-After``) and ``DownloadRefused`` (404, 410,
any other 4xx, not an image, too large, an unsafe target: the result is unavailable for good).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import aiohttp

from service.assets.probe import ImageInfo, NotAnImage, probe_async
from service.core.images import SNIFF_BYTES, sniff
from service.delivery.sender import retry_after
from service.delivery.ssrf import TargetPolicy, UnsafeTarget, check_url, guarded_session
from service.errors import TaskhookError
from service.settings import AssetSettings

MAX_REDIRECTS = 5
CHUNK = 256 * 1024
_RETRYABLE_STATUS = frozenset({408, 425, 429})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class DownloadError(TaskhookError):
    """A result could not be downloaded."""

    code = "result_unavailable"


class DownloadRetryable(DownloadError):
    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DownloadRefused(DownloadError):
    """This URL will not give an image, however often it is asked."""


@dataclass(frozen=True)
class Staged:
    """A downloaded (or uploaded) image, complete and checked, in the staging directory."""

    path: Path
    sha256: str
    size: int
    info: ImageInfo


def staged_path(staging: Path) -> Path:
    return staging / f"{secrets.token_hex(12)}.part"


#: bytes gathered before they are hashed and written, off the event loop, in one go
FLUSH_BYTES = 1024 * 1024


class StagedWriter:
    """Writes a stream to a staged file: the SHA-256 as it goes, the size cap, the magic number
    on the first bytes. Shared by downloads and uploads; ``TooLarge`` / ``NotAnImage`` say what
    went wrong, and the partial file is removed by ``discard``.

    Hashing and writing happen in a worker thread a mebibyte at a time (both release the GIL),
    so eight downloads at once do not take turns on the event loop for their ``write()``s."""

    def __init__(self, staging: Path, max_bytes: int) -> None:
        self.path = staged_path(staging)
        # 0600 like every file under the data dir, whatever the umask
        self._handle = os.fdopen(
            os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb"
        )
        self._hash = hashlib.sha256()
        self._max = max_bytes
        self._head = b""
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self.size = 0
        self.sniffed: str | None = None

    async def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._max:
            raise TooLarge(f"larger than {self._max} bytes")
        if self.sniffed is None:
            self._head += chunk[:SNIFF_BYTES]
            if len(self._head) >= SNIFF_BYTES:
                self._check_head()
        self._pending.append(chunk)
        self._pending_bytes += len(chunk)
        if self._pending_bytes >= FLUSH_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        data = b"".join(self._pending)
        self._pending, self._pending_bytes = [], 0
        if data:
            await asyncio.to_thread(self._write, data)

    def _write(self, data: bytes) -> None:
        self._hash.update(data)
        self._handle.write(data)

    def _check_head(self) -> None:
        self.sniffed = sniff(self._head)
        if self.sniffed is None:
            raise NotAnImage("its bytes are not a PNG, JPEG or WebP image")

    async def finish(self) -> Staged:
        await self._flush()
        self._handle.close()
        if self.sniffed is None:
            self._check_head()
        info = await probe_async(self.path)
        return Staged(self.path, self._hash.hexdigest(), self.size, info)

    def discard(self) -> None:
        self._handle.close()
        self.path.unlink(missing_ok=True)


class TooLarge(ValueError):
    pass


class Downloader:
    """Fetches result images; one aiohttp session (and connection pool) for the process."""

    def __init__(self, settings: AssetSettings, policy: TargetPolicy, staging: Path) -> None:
        self._settings = settings
        self._policy = policy
        self._staging = staging
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = guarded_session(
                self._policy,
                limit=self._settings.concurrency * 2,
                timeout_s=self._settings.download_timeout_seconds,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, url: str) -> Staged:
        """The image at ``url``, staged; ``DownloadRetryable`` or ``DownloadRefused``."""
        try:
            for _ in range(MAX_REDIRECTS + 1):
                check_url(url, self._policy)  # IP literals never reach the guarded resolver
                async with self._open().get(url, allow_redirects=False) as response:
                    if response.status in _REDIRECTS and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    _judge(response)
                    return await self._stage(response)
            raise DownloadRefused(f"more than {MAX_REDIRECTS} redirects")
        except UnsafeTarget as exc:
            raise DownloadRefused(f"refused target: {exc.message}") from None
        except TimeoutError:
            raise DownloadRetryable("the download timed out") from None
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
            raise DownloadRetryable(f"{type(exc).__name__}: {exc}"[:300]) from None

    async def _stage(self, response: aiohttp.ClientResponse) -> Staged:
        declared = response.content_length
        if declared is not None and declared > self._settings.max_bytes:
            raise DownloadRefused(f"the image is larger than {self._settings.max_bytes} bytes")
        writer = StagedWriter(self._staging, self._settings.max_bytes)
        try:
            async for chunk in response.content.iter_chunked(CHUNK):
                await writer.write(chunk)
            return await writer.finish()
        except TooLarge as exc:
            writer.discard()
            raise DownloadRefused(f"the image is {exc}") from None
        except NotAnImage as exc:
            writer.discard()
            raise DownloadRefused(f"the body is not an image: {exc}") from None
        except BaseException:
            writer.discard()
            raise


def _judge(response: aiohttp.ClientResponse) -> None:
    status = response.status
    if 200 <= status < 300:
        return
    if status >= 500 or status in _RETRYABLE_STATUS:
        wait = retry_after(response.headers.get("retry-after"), time.time())
        raise DownloadRetryable(f"the image server answered {status}", retry_after_s=wait)
    raise DownloadRefused(f"the image server answered {status}")
