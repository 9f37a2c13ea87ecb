"""The asset store contract, the same tests for both stores: files in ``tmp_path`` and a real
S3-compatible server (moto's server mode on loopback). Then the whole mirror on S3."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from service.assets.keeper import open_asset_store
from service.assets.s3 import S3AssetStore
from service.assets.store import (
    CHUNK,
    STALE_STAGING_S,
    AssetStore,
    AssetStoreError,
    BlobMissing,
    FileAssetStore,
    sweep_staging,
)
from service.settings import AssetSettings, S3Settings, Secret, load_settings
from tests import s3_server
from tests.conftest import EXTERNAL_PROVIDERS, Caller, settings_env
from tests.image_server import ImageServer
from tests.upstream.test_callback_rejections import Harness, success_body


@pytest.fixture(params=["file", "s3"])
async def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AssetStore]:
    if request.param == "file":
        store: AssetStore = FileAssetStore(tmp_path / "assets")
    else:
        staging = tmp_path / "staging"
        staging.mkdir()
        store = S3AssetStore(s3_server.new_bucket(), staging)
    yield store
    await store.close()


def stage(store: AssetStore, data: bytes) -> tuple[str, Path]:
    path = store.staging / f"{os.urandom(6).hex()}.part"
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest(), path


async def read_all(store: AssetStore, key: str, start: int, end: int) -> list[bytes]:
    return [chunk async for chunk in store.read(key, start, end)]


async def test_put_then_read_whole_and_in_ranges(blobs: AssetStore) -> None:
    data = bytes(range(256)) * 40
    key, staged = stage(blobs, data)
    await blobs.put(key, staged, "image/png")
    assert not staged.exists()  # consumed
    assert await blobs.size(key) == len(data)
    assert b"".join(await read_all(blobs, key, 0, len(data))) == data
    for start, end in ((0, 1), (10, 20), (len(data) - 5, len(data)), (100, 9000)):
        assert b"".join(await read_all(blobs, key, start, end)) == data[start:end]
    assert await read_all(blobs, key, 7, 7) == []


async def test_a_large_blob_streams_in_chunks(blobs: AssetStore) -> None:
    data = os.urandom(4 * CHUNK + 3)
    key, staged = stage(blobs, data)
    await blobs.put(key, staged, "image/png")
    chunks = await read_all(blobs, key, 0, len(data))
    assert len(chunks) > 1
    assert max(map(len, chunks)) <= 2 * CHUNK
    assert b"".join(chunks) == data


async def test_the_same_bytes_twice_are_one_blob(blobs: AssetStore) -> None:
    data = b"identical" * 100
    key, first = stage(blobs, data)
    await blobs.put(key, first, "image/png")
    _, second = stage(blobs, data)
    await blobs.put(key, second, "image/png")
    assert not second.exists()
    assert await blobs.size(key) == len(data)


async def test_a_deleted_blob_is_missing(blobs: AssetStore) -> None:
    key, staged = stage(blobs, b"short-lived")
    await blobs.put(key, staged, "image/png")
    await blobs.delete(key)
    await blobs.delete(key)  # twice is fine
    assert await blobs.size(key) is None
    with pytest.raises(BlobMissing):
        await read_all(blobs, key, 0, 5)


async def test_a_staged_file_is_not_a_blob_and_keys_are_checked(blobs: AssetStore) -> None:
    key, _staged = stage(blobs, b"half a download")  # a worker died before put
    assert await blobs.size(key) is None
    for bad in ("../etc/passwd", "A" * 64, "ab", "g" * 64):
        with pytest.raises(ValueError, match="asset key"):
            await blobs.size(bad)


def test_old_staged_files_are_swept_and_fresh_ones_kept(tmp_path: Path) -> None:
    store = FileAssetStore(tmp_path / "assets")
    old, fresh = store.staging / "old.part", store.staging / "fresh.part"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    stale = time.time() - STALE_STAGING_S - 10
    os.utime(old, (stale, stale))
    assert sweep_staging(store.staging) == 1
    assert (old.exists(), fresh.exists()) == (False, True)


async def test_s3_objects_land_under_the_prefix_with_their_type(tmp_path: Path) -> None:
    settings = s3_server.new_bucket(prefix="tenant/images")
    store = S3AssetStore(settings, tmp_path)
    key, staged = stage(store, b"\x89PNG\r\n\x1a\nrest")
    await store.put(key, staged, "image/png")
    import boto3  # moto's own dependency: an independent S3 client to look with

    client = boto3.client(
        "s3", endpoint_url=settings.endpoint_url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    head = client.head_object(Bucket=settings.bucket, Key=f"tenant/images/{key}")
    assert head["ContentType"] == "image/png"
    assert head["ContentLength"] == len(b"\x89PNG\r\n\x1a\nrest")


async def test_an_unreachable_s3_is_asset_store_error_without_the_secret(tmp_path: Path) -> None:
    settings = S3Settings(
        bucket="b", endpoint_url="http://127.0.0.1:9", region="us-east-1",
        access_key_id=Secret("id"), secret_access_key=Secret("very-secret-key"),
    )  # fmt: skip
    store = S3AssetStore(settings, tmp_path)
    key, staged = stage(store, b"bytes")
    with pytest.raises(AssetStoreError) as caught:
        await store.put(key, staged, "image/png")
    assert "very-secret-key" not in str(caught.value)
    assert staged.exists()  # kept for the retry


def test_the_settings_choose_the_store(tmp_path: Path) -> None:
    base = load_settings(settings_env(tmp_path)).assets
    assert isinstance(open_asset_store(base, tmp_path), FileAssetStore)
    s3 = AssetSettings(**{**base.__dict__, "store": "s3", "s3": s3_server.new_bucket()})
    assert isinstance(open_asset_store(s3, tmp_path), S3AssetStore)


@pytest.fixture
def settings(tmp_path: Path) -> object:
    """The app of ``h`` keeps its assets on S3."""
    bucket = s3_server.new_bucket()
    return load_settings(
        settings_env(
            tmp_path, **EXTERNAL_PROVIDERS, TASKHOOK__ASSETS__STORE="s3",
            TASKHOOK_S3_BUCKET=bucket.bucket, TASKHOOK_S3_ENDPOINT_URL=str(bucket.endpoint_url),
            TASKHOOK_S3_PREFIX="kept", TASKHOOK_S3_ACCESS_KEY_ID="testing",
            TASKHOOK_S3_SECRET_ACCESS_KEY="testing",
        )
    )  # fmt: skip


async def test_a_result_mirrored_to_s3_is_served_from_it(
    h: Harness, caller: Caller, image_server: ImageServer
) -> None:
    assert isinstance(h.services.assets.store, S3AssetStore)
    url = image_server.url("on-s3", width=200, height=100)
    task = await h.submitted_task(caller)
    body = success_body(resultJson=json.dumps({"resultUrls": [url]}))
    assert (await h.deliver(task["id"], body)).status_code == 200
    assert await h.settle() == 1
    [result] = (await h.get_task(caller, task["id"]))["results"]
    async with httpx.AsyncClient() as direct:
        original = (await direct.get(url)).content
    served = await h.client.get(result["url"])
    assert served.content == original
    part = await h.client.get(result["url"], headers={"Range": "bytes=8-15"})
    assert part.status_code == 206
    assert part.content == original[8:16]


async def test_a_large_blob_goes_up_in_parts_whole_with_its_type(tmp_path: Path) -> None:
    """obstore switches to a multipart upload past its 5 MiB part size; the object is still
    the one whole blob, Content-Type included."""
    settings = s3_server.new_bucket(prefix="big")
    store = S3AssetStore(settings, tmp_path)
    data = os.urandom(11 * 1024 * 1024 + 1)
    key, staged = stage(store, data)
    await store.put(key, staged, "image/jpeg")
    assert await store.size(key) == len(data)
    assert b"".join(await read_all(store, key, 0, len(data))) == data
    import boto3

    client = boto3.client(
        "s3", endpoint_url=settings.endpoint_url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    head = client.head_object(Bucket=settings.bucket, Key=f"big/{key}")
    assert head["ContentType"] == "image/jpeg"
    assert head["ETag"].endswith('-3"'), "uploaded as three parts"
