"""The kie adapter against a fake Kie.ai market API over real HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from service.core.ledger import TaskStatus
from service.providers.base import Provider, ProviderConfig, ProviderRejected, ProviderRetryable
from service.providers.kie import KIE_MODELS, KieProvider
from tests.providers.fakes.kie import FakeKie
from tests.providers.support import (
    API_KEY,
    REJECTIONS,
    RETRYABLE,
    closed_port_url,
    make_task,
    served,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

CALLBACK = "https://hooks.example.com/callbacks/kie/tok_123"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server() -> AsyncIterator[tuple[FakeKie, str]]:
    fake = FakeKie(API_KEY)
    async with served(fake) as url:
        yield fake, url


@pytest.fixture
def fake(server: tuple[FakeKie, str]) -> FakeKie:
    server[0].reset()
    return server[0]


@pytest.fixture
def base(server: tuple[FakeKie, str], fake: FakeKie) -> str:
    return server[1]


def adapter(base: str, client: httpx.AsyncClient, **config: object) -> KieProvider:
    settings: dict[str, object] = {"api_key": API_KEY, "timeout_s": 5.0, **config}
    return KieProvider(ProviderConfig("kie", base, **settings), client)  # type: ignore[arg-type]


@pytest.fixture
def kie(base: str, http_client: httpx.AsyncClient) -> KieProvider:
    return adapter(base, http_client)


async def test_the_adapter_is_a_provider(http_client: httpx.AsyncClient) -> None:
    provider: Provider = adapter("http://unused", http_client)
    assert (provider.name, provider.accepts_callbacks, provider.confirms_callbacks) == (
        "kie",
        True,
        True,
    )


# -- submit ---------------------------------------------------------------------------------


async def test_submit_sends_the_documented_request(kie: KieProvider, fake: FakeKie) -> None:
    task = make_task(model="nano-banana-pro", aspect_ratio="16:9", resolution="2k", seed=7)
    task_id = await kie.submit(task, CALLBACK)
    assert task_id in fake.tasks
    sent = fake.last
    assert (sent.method, sent.path) == ("POST", "/api/v1/jobs/createTask")
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["content-type"] == "application/json"
    assert sent.json == {
        "model": "nano-banana-pro",
        "callBackUrl": CALLBACK,
        "input": {
            "prompt": task.spec.prompt,
            "aspect_ratio": "16:9",
            "resolution": "2K",
            "output_format": "png",
        },
    }


@pytest.mark.parametrize(
    ("model", "kind", "kie_model"),
    [
        ("nano-banana", "text-to-image", "google/nano-banana"),
        ("nano-banana", "edit", "google/nano-banana-edit"),
        ("nano-banana-fast", "text-to-image", "google/nano-banana"),
        ("nano-banana-fast", "edit", "google/nano-banana-edit"),
        ("nano-banana-pro", "text-to-image", "nano-banana-pro"),
        ("nano-banana-pro", "edit", "nano-banana-pro"),
        ("nano-banana-2", "text-to-image", "nano-banana-2"),
        ("nano-banana-2", "edit", "nano-banana-2"),
    ],
)
async def test_models_map_to_kie_names(
    kie: KieProvider, fake: FakeKie, model: str, kind: str, kie_model: str
) -> None:
    images = ("https://img.example.com/a.png",) if kind == "edit" else ()
    await kie.submit(make_task(model=model, type=kind, images=images), CALLBACK)
    assert fake.last.json["model"] == kie_model


async def test_gemini_25_models_use_their_own_spelling(kie: KieProvider, fake: FakeKie) -> None:
    images = ("https://img.example.com/a.png", "https://img.example.com/b.png")
    task = make_task(model="nano-banana", images=images, aspect_ratio="4:3", output_format="jpeg")
    await kie.submit(task, None)
    sent = fake.last.json
    assert "callBackUrl" not in sent
    assert sent["input"] == {
        "prompt": task.spec.prompt,
        "image_size": "4:3",
        "output_format": "jpeg",
        "image_urls": list(images),
    }


async def test_newer_models_take_image_input_and_jpg(kie: KieProvider, fake: FakeKie) -> None:
    task = make_task(
        model="nano-banana-2",
        images=("https://img.example.com/a.png",),
        resolution="4k",
        output_format="jpeg",
    )
    await kie.submit(task, CALLBACK)
    data = fake.last.json["input"]
    assert data["image_input"] == ["https://img.example.com/a.png"]
    assert (data["resolution"], data["output_format"]) == ("4K", "jpg")
    assert "image_urls" not in data


async def test_every_model_in_the_table_is_accepted_by_the_fake_market() -> None:
    from tests.providers.fakes.kie import MODELS

    assert {m.text for m in KIE_MODELS.values()} | {m.edit for m in KIE_MODELS.values()} <= MODELS


async def test_an_unknown_model_is_refused_without_a_call(kie: KieProvider, fake: FakeKie) -> None:
    with pytest.raises(ProviderRejected) as caught:
        await kie.submit(make_task(model="imagen-9"), CALLBACK)
    assert caught.value.failure.code == "model_unsupported"
    assert fake.requests == []


# -- fetch_status ---------------------------------------------------------------------------


async def test_fetch_status_follows_every_state(kie: KieProvider, fake: FakeKie) -> None:
    task_id = await kie.submit(make_task(), CALLBACK)

    update = await kie.fetch_status(task_id)
    assert (update.provider_task_id, update.status) == (task_id, TaskStatus.SUBMITTED)
    sent = fake.last
    assert (sent.method, sent.path, sent.query) == (
        "GET",
        "/api/v1/jobs/recordInfo",
        {"taskId": task_id},
    )
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"

    fake.tasks[task_id]["state"] = "queuing"
    assert (await kie.fetch_status(task_id)).status is TaskStatus.SUBMITTED

    fake.tasks[task_id].update(state="generating", progress=42)
    update = await kie.fetch_status(task_id)
    assert (update.status, update.progress) == (TaskStatus.RUNNING, 42)

    urls = ["https://cdn.kie.ai/a.png", "https://cdn.kie.ai/b.png"]
    fake.succeed(task_id, urls)
    update = await kie.fetch_status(task_id)
    assert (update.status, update.result_urls, update.failure) == (
        TaskStatus.SUCCEEDED,
        tuple(urls),
        None,
    )


async def test_fetch_status_reports_a_failure_readably(kie: KieProvider, fake: FakeKie) -> None:
    task_id = await kie.submit(make_task(), CALLBACK)
    fake.fail(task_id, "400", "Your prompt was flagged by the content filter")
    update = await kie.fetch_status(task_id)
    assert update.status is TaskStatus.FAILED
    assert update.failure is not None
    assert update.failure.code == "provider_failed"
    assert "flagged by the content filter" in update.failure.message
    assert "failCode 400" in update.failure.message


async def test_progress_that_is_not_a_percentage_is_dropped(
    kie: KieProvider, fake: FakeKie
) -> None:
    task_id = await kie.submit(make_task(), CALLBACK)
    for junk in (150, -1, "lots", True, None, float("nan")):
        fake.tasks[task_id].update(state="generating", progress=junk)
        if isinstance(junk, float):  # NaN is not JSON; send it as the fake would
            fake.tasks[task_id]["progress"] = "NaN"
        assert (await kie.fetch_status(task_id)).progress is None


async def test_an_unknown_task_is_not_found(kie: KieProvider) -> None:
    with pytest.raises(ProviderRejected) as caught:
        await kie.fetch_status("kie_missing")
    assert caught.value.failure.code == "provider_not_found"
    assert "Task not found" in caught.value.failure.message


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "code"), REJECTIONS)
@pytest.mark.parametrize("via", ["http", "body"])
async def test_rejections(
    kie: KieProvider, fake: FakeKie, status: int, code: str, via: str
) -> None:
    http_status = status if via == "http" else 200
    for call in ("submit", "fetch"):
        fake.answer_next(http_status, {"code": status, "msg": f"nope {status}"})
        with pytest.raises(ProviderRejected) as caught:
            if call == "submit":
                await kie.submit(make_task(), CALLBACK)
            else:
                await kie.fetch_status("kie_1")
        failure = caught.value.failure
        assert failure.code == code
        assert f"HTTP {status}" in failure.message
        assert f"nope {status}" in failure.message


@pytest.mark.parametrize("status", [*RETRYABLE, 455])
@pytest.mark.parametrize("via", ["http", "body"])
async def test_retryable_statuses(kie: KieProvider, fake: FakeKie, status: int, via: str) -> None:
    http_status = status if via == "http" else 200
    fake.answer_next(http_status, {"code": status, "msg": "busy"}, headers={"Retry-After": "7"})
    with pytest.raises(ProviderRetryable) as caught:
        await kie.submit(make_task(), CALLBACK)
    assert caught.value.retry_after_s == 7.0
    fake.answer_next(http_status, {"code": status, "msg": "busy"})
    with pytest.raises(ProviderRetryable) as caught:
        await kie.fetch_status("kie_1")
    assert caught.value.retry_after_s is None


async def test_retry_after_as_an_http_date(kie: KieProvider, fake: FakeKie) -> None:
    fake.answer_next(503, {"code": 503}, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    with pytest.raises(ProviderRetryable) as caught:
        await kie.submit(make_task(), CALLBACK)
    assert caught.value.retry_after_s == 0.0  # a date in the past: retry now


async def test_feature_disabled_is_final(kie: KieProvider, fake: FakeKie) -> None:
    fake.answer_next(200, {"code": 505, "msg": "Feature disabled"})
    with pytest.raises(ProviderRejected) as caught:
        await kie.submit(make_task(), CALLBACK)
    assert caught.value.failure.code == "provider_rejected"


async def test_a_wrong_key_is_unauthorized_and_not_echoed(
    base: str, http_client: httpx.AsyncClient, fake: FakeKie
) -> None:
    wrong = adapter(base, http_client, api_key="sk-wrong-key-42")
    fake.answer_next(401, {"code": 401, "msg": "Invalid key sk-wrong-key-42"})
    with pytest.raises(ProviderRejected) as caught:
        await wrong.submit(make_task(), CALLBACK)
    assert caught.value.failure.code == "provider_unauthorized"
    assert "sk-wrong-key-42" not in caught.value.failure.message
    assert "[redacted]" in caught.value.failure.message
    with pytest.raises(ProviderRejected) as caught:  # the fake's own 401
        await wrong.fetch_status("kie_1")
    assert "sk-wrong-key-42" not in str(caught.value)


async def test_long_provider_messages_are_cut(kie: KieProvider, fake: FakeKie) -> None:
    fake.answer_next(400, {"code": 400, "msg": "x" * 5000})
    with pytest.raises(ProviderRejected) as caught:
        await kie.submit(make_task(), CALLBACK)
    assert len(caught.value.failure.message) <= 300


async def test_a_timeout_is_retryable(
    base: str, http_client: httpx.AsyncClient, fake: FakeKie
) -> None:
    slow = adapter(base, http_client, timeout_s=0.2)
    fake.delay_s = 0.5
    with pytest.raises(ProviderRetryable, match="did not answer"):
        await slow.submit(make_task(), CALLBACK)
    with pytest.raises(ProviderRetryable, match="did not answer"):
        await slow.fetch_status("kie_1")


async def test_a_refused_connection_is_retryable(http_client: httpx.AsyncClient) -> None:
    down = adapter(closed_port_url(), http_client)
    with pytest.raises(ProviderRetryable, match="Could not reach kie"):
        await down.submit(make_task(), CALLBACK)
    with pytest.raises(ProviderRetryable, match="Could not reach kie"):
        await down.fetch_status("kie_1")


@pytest.mark.parametrize(
    "raw",
    [
        b"<html>oops</html>",
        b"",
        b"[1, 2]",
        b'{"code": 200, "msg": "success"}',
        b'{"code": 200, "data": null}',
        b'{"code": 200, "data": {"taskId": ""}}',
        b'{"code": 200, "data": {"taskId": 12345}}',
        b'{"code": 200, "data": {"taskId": " padded "}}',
        b'{"code": "weird", "data": {"taskId": "kie_1"}}',
        b"[" * 50_000,
    ],
)
async def test_a_malformed_create_answer_is_retryable(
    kie: KieProvider, fake: FakeKie, raw: bytes
) -> None:
    fake.answer_next(200, raw=raw)
    with pytest.raises(ProviderRetryable, match="unusable answer"):
        await kie.submit(make_task(), CALLBACK)


@pytest.mark.parametrize(
    "data",
    [
        None,
        {"state": "success"},
        {"taskId": "kie_other", "state": "generating"},
        {"taskId": "kie_1", "state": "exploded"},
        {"taskId": "kie_1", "state": "success", "resultJson": ""},
        {"taskId": "kie_1", "state": "success", "resultJson": {"resultUrls": ["https://a/b"]}},
        {"taskId": "kie_1", "state": "success", "resultJson": '{"resultUrls": ["file:///x"]}'},
    ],
)
async def test_a_malformed_record_is_retryable(
    kie: KieProvider, fake: FakeKie, data: object
) -> None:
    fake.answer_next(200, {"code": 200, "message": "success", "data": data})
    with pytest.raises(ProviderRetryable, match="unusable answer"):
        await kie.fetch_status("kie_1")


async def test_redirects_are_not_followed(kie: KieProvider, fake: FakeKie) -> None:
    fake.answer_next(302, raw=b"", headers={"Location": "https://evil.example.com/"})
    with pytest.raises(ProviderRetryable, match="HTTP 302"):
        await kie.submit(make_task(), CALLBACK)
    assert len(fake.requests) == 1


async def test_the_sent_body_is_plain_json(kie: KieProvider, fake: FakeKie) -> None:
    task = make_task(prompt='Ünïcödé ✓ "quotes" and\nnewlines')
    await kie.submit(task, CALLBACK)
    assert json.loads(fake.last.body)["input"]["prompt"] == task.spec.prompt


async def test_a_success_naming_no_image_is_a_success_without_results(
    kie: KieProvider, fake: FakeKie
) -> None:
    # the ledger's mirror hold turns it into a failed task (no_result), refunded
    data = {"taskId": "kie_1", "state": "success", "resultJson": '{"resultUrls": []}'}
    fake.answer_next(200, {"code": 200, "message": "success", "data": data})
    update = await kie.fetch_status("kie_1")
    assert (update.status, update.result_urls) == (TaskStatus.SUCCEEDED, ())
