"""The nanobananapro adapter against a fake nanobananapro.cloud over real HTTP."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from service.assets.keeper import UploadFiles
from service.assets.store import FileAssetStore
from service.core.assets import Asset
from service.core.ledger import TaskStatus
from service.providers.base import (
    CallbackInvalid,
    Provider,
    ProviderConfig,
    ProviderRejected,
    ProviderRetryable,
)
from service.providers.nanobananapro import NanoBananaProProvider
from service.store.base import Account
from service.store.sqlite import SqliteStore
from tests.image_server import image_bytes
from tests.providers.fakes.nanobananapro import FakeNanoBananaPro, form_fields, form_files
from tests.providers.support import (
    API_KEY,
    REJECTIONS,
    RETRYABLE,
    closed_port_url,
    make_task,
    served,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

Server = tuple[FakeNanoBananaPro, str]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server() -> AsyncIterator[Server]:
    fake = FakeNanoBananaPro(API_KEY)
    async with served(fake) as url:
        yield fake, url


@pytest.fixture
def fake(server: Server) -> FakeNanoBananaPro:
    server[0].reset()
    return server[0]


def adapter(base: str, client: httpx.AsyncClient, timeout_s: float = 5.0) -> NanoBananaProProvider:
    config = ProviderConfig("nanobananapro", base, API_KEY, timeout_s=timeout_s)
    return NanoBananaProProvider(config, client)


@pytest.fixture
def nbp(
    server: Server, fake: FakeNanoBananaPro, http_client: httpx.AsyncClient
) -> NanoBananaProProvider:
    return adapter(server[1], http_client)


async def test_it_is_a_poll_only_provider(http_client: httpx.AsyncClient) -> None:
    provider: Provider = adapter("http://unused", http_client)
    assert (provider.name, provider.accepts_callbacks, provider.confirms_callbacks) == (
        "nanobananapro",
        False,
        False,
    )
    with pytest.raises(CallbackInvalid, match="does not call back"):
        provider.verify_callback({}, b"{}", 0)
    with pytest.raises(CallbackInvalid, match="does not call back"):
        provider.parse_callback(b"{}")


async def test_submit_sends_multipart_form_data(
    nbp: NanoBananaProProvider, fake: FakeNanoBananaPro
) -> None:
    job = make_task(model="nano-banana-pro", aspect_ratio="21:9", resolution="4k")
    task_id = await nbp.submit(job, "https://ignored.example.com/cb")
    assert task_id in fake.tasks
    sent = fake.last
    assert (sent.method, sent.path) == ("POST", "/api/v1/image/nano-banana")
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert form_fields(sent.headers["content-type"], sent.body) == {
        "prompt": [job.spec.prompt],
        "model": ["nano-banana-pro"],
        "mode": ["text-to-image"],
        "aspectRatio": ["21:9"],
        "imageSize": ["4K"],
    }


@pytest.mark.parametrize("model", ["nano-banana-fast", "nano-banana", "nano-banana-pro"])
async def test_image_to_image_repeats_image_url(
    nbp: NanoBananaProProvider, fake: FakeNanoBananaPro, model: str
) -> None:
    images = ("https://img.example.com/a.png", "https://img.example.com/b.png")
    await nbp.submit(make_task(model=model, images=images), None)
    fields = form_fields(fake.last.headers["content-type"], fake.last.body)
    assert fields["model"] == [model]
    assert fields["mode"] == ["image-to-image"]
    assert fields["imageUrl"] == list(images)
    assert fields["aspectRatio"] == ["auto"]


async def test_an_upload_is_sent_as_a_file_from_the_asset_store(
    server: Server, fake: FakeNanoBananaPro, http_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    # a real store and asset store holding one upload, read through UploadFiles
    store = SqliteStore(tmp_path / "t.db")
    await store.open()
    blobs = FileAssetStore(tmp_path / "assets")
    png = image_bytes("reference", "png", 40, 30)
    staged = blobs.staging / "ref.part"
    staged.write_bytes(png)
    sha = hashlib.sha256(png).hexdigest()
    await blobs.put(sha, staged, "image/png")
    upload = Asset(
        id="upl_01M8YD0000000000000000000Q", account_id="acct_01M8YD0000000000000000000Q",
        kind="upload", sha256=sha, content_type="image/png", width=40, height=30,
        bytes=len(png), created_at=1,
    )  # fmt: skip
    async with store.transaction() as tx:
        await tx.insert_account(Account(upload.account_id, "a", 1))
        await tx.insert_asset(upload)
    try:
        config = ProviderConfig("nanobananapro", server[1], API_KEY)
        provider = NanoBananaProProvider(config, http_client, UploadFiles(store, blobs))
        assert provider.takes_files
        images = (upload.id, "https://img.example.com/b.png")
        await provider.submit(make_task(model="nano-banana", images=images), None)
    finally:
        await store.close()
    content_type = fake.last.headers["content-type"]
    assert form_fields(content_type, fake.last.body)["imageUrl"] == [images[1]]
    assert form_files(content_type, fake.last.body) == [
        ("imageFile", f"{upload.id}.png", "image/png", png)
    ]


async def test_nano_banana_2_is_refused_without_a_call(
    nbp: NanoBananaProProvider, fake: FakeNanoBananaPro
) -> None:
    with pytest.raises(ProviderRejected) as caught:
        await nbp.submit(make_task(model="nano-banana-2"), None)
    assert caught.value.failure.code == "model_unsupported"
    assert "nano-banana-2" in caught.value.failure.message
    assert fake.requests == []


async def test_fetch_status_follows_every_state(
    nbp: NanoBananaProProvider, fake: FakeNanoBananaPro
) -> None:
    task_id = await nbp.submit(make_task(), None)
    update = await nbp.fetch_status(task_id)
    assert (update.provider_task_id, update.status, update.progress) == (
        task_id,
        TaskStatus.RUNNING,
        0,
    )
    sent = fake.last
    assert (sent.method, sent.path, sent.json) == (
        "POST",
        "/api/v1/image/nano-banana/result",
        {"taskId": task_id},
    )
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"

    fake.set(task_id, "running", progress=64)
    assert (await nbp.fetch_status(task_id)).progress == 64

    results = [
        {"url": "https://example.com/generated.png", "content": "A banana cat"},
        {"url": "https://example.com/generated-2.png"},
    ]
    fake.set(task_id, "succeeded", progress=100, results=results)
    update = await nbp.fetch_status(task_id)
    assert (update.status, update.result_urls) == (
        TaskStatus.SUCCEEDED,
        ("https://example.com/generated.png", "https://example.com/generated-2.png"),
    )


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"failure_reason": "NSFW content"}, "nanobananapro failed the task: NSFW content"),
        ({"error": "Upstream error"}, "nanobananapro failed the task: Upstream error"),
        ({"failure_reason": None, "error": None}, "nanobananapro failed."),
    ],
)
async def test_a_failure_is_readable(
    nbp: NanoBananaProProvider, fake: FakeNanoBananaPro, fields: dict[str, object], expected: str
) -> None:
    task_id = await nbp.submit(make_task(), None)
    fake.set(task_id, "failed", **fields)
    update = await nbp.fetch_status(task_id)
    assert update.status is TaskStatus.FAILED
    assert update.failure is not None
    assert (update.failure.code, update.failure.message) == ("provider_failed", expected)


async def test_an_unknown_task_is_not_found(nbp: NanoBananaProProvider) -> None:
    with pytest.raises(ProviderRejected) as caught:
        await nbp.fetch_status("task-missing")
    assert caught.value.failure.code == "provider_not_found"
    assert "Task not found" in caught.value.failure.message


@pytest.mark.parametrize(("status", "code"), REJECTIONS)
async def test_rejections(
    nbp: NanoBananaProProvider, fake: FakeNanoBananaPro, status: int, code: str
) -> None:
    for call in ("submit", "fetch"):
        fake.answer_next(status, {"error": f"nope {status}"})
        with pytest.raises(ProviderRejected) as caught:
            if call == "submit":
                await nbp.submit(make_task(), None)
            else:
                await nbp.fetch_status("task-x")
        assert caught.value.failure.code == code
        assert f"nope {status}" in caught.value.failure.message


async def test_a_wrong_key_is_unauthorized(
    server: Server, fake: FakeNanoBananaPro, http_client: httpx.AsyncClient
) -> None:
    config = ProviderConfig("nanobananapro", server[1], "sk-wrong")
    with pytest.raises(ProviderRejected) as caught:
        await NanoBananaProProvider(config, http_client).submit(make_task(), None)
    assert caught.value.failure.code == "provider_unauthorized"
    assert "Not authenticated" in caught.value.failure.message


@pytest.mark.parametrize("status", RETRYABLE)
async def test_retryable_statuses(
    nbp: NanoBananaProProvider, fake: FakeNanoBananaPro, status: int
) -> None:
    fake.answer_next(status, {"error": "busy"}, headers={"Retry-After": "3"})
    with pytest.raises(ProviderRetryable) as caught:
        await nbp.submit(make_task(), None)
    assert caught.value.retry_after_s == 3.0
    fake.answer_next(status, {"error": "busy"})
    with pytest.raises(ProviderRetryable):
        await nbp.fetch_status("task-x")


async def test_a_timeout_is_retryable(
    server: Server, fake: FakeNanoBananaPro, http_client: httpx.AsyncClient
) -> None:
    slow = adapter(server[1], http_client, timeout_s=0.2)
    fake.delay_s = 0.5
    with pytest.raises(ProviderRetryable, match="did not answer"):
        await slow.submit(make_task(), None)
    with pytest.raises(ProviderRetryable, match="did not answer"):
        await slow.fetch_status("task-x")


async def test_a_refused_connection_is_retryable(http_client: httpx.AsyncClient) -> None:
    down = adapter(closed_port_url(), http_client)
    with pytest.raises(ProviderRetryable, match="Could not reach nanobananapro"):
        await down.submit(make_task(), None)
    with pytest.raises(ProviderRetryable, match="Could not reach nanobananapro"):
        await down.fetch_status("task-x")


@pytest.mark.parametrize(
    "raw",
    [b"", b"{}", b'{"data": []}', b'{"data": {"status": "running"}}', b'{"data": {"id": null}}'],
)
async def test_a_malformed_create_answer_is_retryable(
    nbp: NanoBananaProProvider, fake: FakeNanoBananaPro, raw: bytes
) -> None:
    fake.answer_next(200, raw=raw)
    with pytest.raises(ProviderRetryable, match="unusable answer"):
        await nbp.submit(make_task(), None)


@pytest.mark.parametrize(
    "data",
    [
        None,
        {"id": "task-other", "status": "running"},
        {"id": "task-x", "status": "queued"},
        {"id": "task-x", "status": "succeeded", "results": None},
        {"id": "task-x", "status": "succeeded", "results": ["https://a.example.com/x.png"]},
        {"id": "task-x", "status": "succeeded", "results": [{"url": "data:image/png;base64,AA"}]},
        {
            "id": "task-x",
            "status": "succeeded",
            "results": [{"url": "https://a.example.com/x.png"}, {"content": "no url"}],
        },
    ],
)
async def test_a_malformed_result_answer_is_retryable(
    nbp: NanoBananaProProvider, fake: FakeNanoBananaPro, data: object
) -> None:
    fake.answer_next(200, {"data": data})
    with pytest.raises(ProviderRetryable, match="unusable answer"):
        await nbp.fetch_status("task-x")


async def test_results_get_their_dimensions_from_the_task(
    nbp: NanoBananaProProvider, fake: FakeNanoBananaPro
) -> None:
    job = make_task(model="nano-banana", aspect_ratio="4:3", resolution="1k", output_format="jpeg")
    task_id = await nbp.submit(job, None)
    fake.set(task_id, "succeeded", results=[{"url": "https://example.com/generated.jpg"}])
    change = (await nbp.fetch_status(task_id)).change_for(job)
    assert [(r.content_type, r.width, r.height) for r in change.results] == [
        ("image/jpeg", 1024, 768)
    ]


async def test_a_success_naming_no_image_is_a_success_without_results(
    nbp: NanoBananaProProvider, fake: FakeNanoBananaPro
) -> None:
    fake.answer_next(200, {"data": {"id": "task-x", "status": "succeeded", "results": []}})
    update = await nbp.fetch_status("task-x")
    assert (update.status, update.result_urls) == (TaskStatus.SUCCEEDED, ())
