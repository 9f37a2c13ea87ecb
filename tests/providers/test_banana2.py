"""The banana2 adapter against a fake banana2api.com over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from service.core.ledger import TaskStatus
from service.providers.banana2 import Banana2Provider
from service.providers.base import (
    CallbackInvalid,
    Provider,
    ProviderConfig,
    ProviderRejected,
    ProviderRetryable,
)
from tests.providers.fakes.banana2 import FakeBanana2
from tests.providers.support import (
    API_KEY,
    REJECTIONS,
    RETRYABLE,
    closed_port_url,
    make_task,
    served,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server() -> AsyncIterator[tuple[FakeBanana2, str]]:
    fake = FakeBanana2(API_KEY)
    async with served(fake) as url:
        yield fake, url


@pytest.fixture
def fake(server: tuple[FakeBanana2, str]) -> FakeBanana2:
    server[0].reset()
    return server[0]


def adapter(base: str, client: httpx.AsyncClient, timeout_s: float = 5.0) -> Banana2Provider:
    return Banana2Provider(ProviderConfig("banana2", base, API_KEY, timeout_s=timeout_s), client)


@pytest.fixture
def banana2(
    server: tuple[FakeBanana2, str], fake: FakeBanana2, http_client: httpx.AsyncClient
) -> Banana2Provider:
    return adapter(server[1], http_client)


async def test_it_is_a_poll_only_provider(http_client: httpx.AsyncClient) -> None:
    provider: Provider = adapter("http://unused", http_client)
    assert (provider.name, provider.accepts_callbacks, provider.confirms_callbacks) == (
        "banana2",
        False,
        False,
    )
    with pytest.raises(CallbackInvalid, match="does not call back"):
        provider.verify_callback({}, b"{}", 0)
    with pytest.raises(CallbackInvalid, match="does not call back"):
        provider.parse_callback(b"{}")


async def test_submit_sends_the_documented_request(
    banana2: Banana2Provider, fake: FakeBanana2
) -> None:
    job = make_task(model="nano-banana-2", aspect_ratio="16:9", resolution="2k")
    task_id = await banana2.submit(job, "https://ignored.example.com/cb")
    assert task_id in fake.tasks
    sent = fake.last
    assert (sent.method, sent.path) == ("POST", "/api/generate")
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.json == {
        "prompt": job.spec.prompt,
        "type": "text-to-image",
        "aspect_ratio": "16:9",
        "resolution": "2k",
        "output_format": "png",
    }


async def test_an_edit_sends_its_images(banana2: Banana2Provider, fake: FakeBanana2) -> None:
    images = ("https://img.example.com/cat.jpg", "https://img.example.com/dog.jpg")
    job = make_task(model="nano-banana-2", images=images, output_format="jpeg")
    await banana2.submit(job, None)
    sent = fake.last.json
    assert (sent["type"], sent["images"], sent["output_format"]) == ("edit", list(images), "jpeg")
    assert "aspect_ratio" not in sent  # "auto" is not a banana2 ratio; its default is square


@pytest.mark.parametrize("model", ["nano-banana", "nano-banana-fast", "nano-banana-pro"])
async def test_other_models_are_refused_without_a_call(
    banana2: Banana2Provider, fake: FakeBanana2, model: str
) -> None:
    with pytest.raises(ProviderRejected) as caught:
        await banana2.submit(make_task(model=model), None)
    assert caught.value.failure.code == "model_unsupported"
    assert fake.requests == []


async def test_fetch_status_follows_every_state(
    banana2: Banana2Provider, fake: FakeBanana2
) -> None:
    task_id = await banana2.submit(make_task(model="nano-banana-2"), None)
    update = await banana2.fetch_status(task_id)
    assert (update.provider_task_id, update.status, update.progress) == (
        task_id,
        TaskStatus.RUNNING,
        None,
    )
    sent = fake.last
    assert (sent.method, sent.path, sent.query) == ("GET", "/api/status", {"task_id": task_id})
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"

    fake.set(task_id, "IN_PROGRESS", progress=30)
    assert (await banana2.fetch_status(task_id)).progress == 30

    urls = ["https://generated-image-url.com/image1.png"]
    fake.set(task_id, "SUCCESS", response=urls)
    update = await banana2.fetch_status(task_id)
    assert (update.status, update.result_urls) == (TaskStatus.SUCCEEDED, tuple(urls))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"error": "Content policy violation"},
            "banana2 failed the task: Content policy violation",
        ),
        ({"message": "Upstream timeout"}, "banana2 failed the task: Upstream timeout"),
        ({}, "banana2 failed the task."),
    ],
)
async def test_a_failure_is_readable(
    banana2: Banana2Provider, fake: FakeBanana2, fields: dict[str, str], expected: str
) -> None:
    task_id = await banana2.submit(make_task(model="nano-banana-2"), None)
    fake.set(task_id, "FAILED", **fields)
    update = await banana2.fetch_status(task_id)
    assert update.status is TaskStatus.FAILED
    assert update.failure is not None
    assert (update.failure.code, update.failure.message) == ("provider_failed", expected)


async def test_the_fake_itself_refuses_bad_parameters(
    banana2: Banana2Provider, fake: FakeBanana2
) -> None:
    fake_task = make_task(model="nano-banana-2", type="edit")  # an edit without images
    with pytest.raises(ProviderRejected) as caught:
        await banana2.submit(fake_task, None)
    assert caught.value.failure.code == "provider_bad_request"
    assert "images is required for edit" in caught.value.failure.message


async def test_an_unknown_task_is_not_found(banana2: Banana2Provider) -> None:
    with pytest.raises(ProviderRejected) as caught:
        await banana2.fetch_status("n82missing")
    assert caught.value.failure.code == "provider_not_found"


@pytest.mark.parametrize(("status", "code"), REJECTIONS)
async def test_rejections(
    banana2: Banana2Provider, fake: FakeBanana2, status: int, code: str
) -> None:
    for call in ("submit", "fetch"):
        fake.answer_next(status, {"code": status, "message": f"nope {status}"})
        with pytest.raises(ProviderRejected) as caught:
            if call == "submit":
                await banana2.submit(make_task(model="nano-banana-2"), None)
            else:
                await banana2.fetch_status("n82x")
        assert caught.value.failure.code == code
        assert f"nope {status}" in caught.value.failure.message


async def test_an_error_inside_a_200_counts_too(
    banana2: Banana2Provider, fake: FakeBanana2
) -> None:
    fake.answer_next(200, {"code": 402, "message": "Insufficient credits", "data": None})
    with pytest.raises(ProviderRejected) as caught:
        await banana2.submit(make_task(model="nano-banana-2"), None)
    assert caught.value.failure.code == "provider_insufficient_credits"


@pytest.mark.parametrize("status", RETRYABLE)
async def test_retryable_statuses(banana2: Banana2Provider, fake: FakeBanana2, status: int) -> None:
    fake.answer_next(status, {"code": status, "message": "busy"}, headers={"Retry-After": "12"})
    with pytest.raises(ProviderRetryable) as caught:
        await banana2.submit(make_task(model="nano-banana-2"), None)
    assert caught.value.retry_after_s == 12.0
    fake.answer_next(status, raw=b"Bad Gateway", headers={"Retry-After": "soon"})
    with pytest.raises(ProviderRetryable) as caught:
        await banana2.fetch_status("n82x")
    assert caught.value.retry_after_s is None


async def test_a_timeout_is_retryable(
    server: tuple[FakeBanana2, str], fake: FakeBanana2, http_client: httpx.AsyncClient
) -> None:
    slow = adapter(server[1], http_client, timeout_s=0.2)
    fake.delay_s = 0.5
    with pytest.raises(ProviderRetryable, match="did not answer"):
        await slow.submit(make_task(model="nano-banana-2"), None)
    with pytest.raises(ProviderRetryable, match="did not answer"):
        await slow.fetch_status("n82x")


async def test_a_refused_connection_is_retryable(http_client: httpx.AsyncClient) -> None:
    down = adapter(closed_port_url(), http_client)
    with pytest.raises(ProviderRetryable, match="Could not reach banana2"):
        await down.submit(make_task(model="nano-banana-2"), None)
    with pytest.raises(ProviderRetryable, match="Could not reach banana2"):
        await down.fetch_status("n82x")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"null",
        b'{"code": 200, "message": "success"}',
        b'{"code": 200, "data": {"status": "IN_PROGRESS"}}',
        b'{"code": 200, "data": {"task_id": ["n82"]}}',
    ],
)
async def test_a_malformed_generate_answer_is_retryable(
    banana2: Banana2Provider, fake: FakeBanana2, raw: bytes
) -> None:
    fake.answer_next(200, raw=raw)
    with pytest.raises(ProviderRetryable, match="unusable answer"):
        await banana2.submit(make_task(model="nano-banana-2"), None)


@pytest.mark.parametrize(
    "data",
    [
        None,
        {"task_id": "n82other", "status": "IN_PROGRESS"},
        {"task_id": "n82x", "status": "PENDING"},
        {"task_id": "n82x", "status": "SUCCESS"},
        {"task_id": "n82x", "status": "SUCCESS", "response": "https://a.example.com/x.png"},
        {"task_id": "n82x", "status": "SUCCESS", "response": [{"url": "https://a/x.png"}]},
    ],
)
async def test_a_malformed_status_answer_is_retryable(
    banana2: Banana2Provider, fake: FakeBanana2, data: object
) -> None:
    fake.answer_next(200, {"code": 200, "message": "success", "data": data})
    with pytest.raises(ProviderRetryable, match="unusable answer"):
        await banana2.fetch_status("n82x")


async def test_results_get_their_dimensions_from_the_task(
    banana2: Banana2Provider, fake: FakeBanana2
) -> None:
    job = make_task(model="nano-banana-2", aspect_ratio="9:16", resolution="4k")
    task_id = await banana2.submit(job, None)
    fake.set(task_id, "SUCCESS", response=["https://generated-image-url.com/1.png"])
    change = (await banana2.fetch_status(task_id)).change_for(job)
    assert [(r.content_type, r.width, r.height) for r in change.results] == [
        ("image/png", 2304, 4096)
    ]


async def test_a_success_naming_no_image_is_a_success_without_results(
    banana2: Banana2Provider, fake: FakeBanana2
) -> None:
    data = {"task_id": "n82x", "status": "SUCCESS", "response": []}
    fake.answer_next(200, {"code": 200, "message": "success", "data": data})
    update = await banana2.fetch_status("n82x")
    assert (update.status, update.result_urls) == (TaskStatus.SUCCEEDED, ())
