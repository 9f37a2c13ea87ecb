"""The simulator adapter: Kie's API shape, Standard Webhooks callbacks.

Requests are checked against the Kie fake (which records them) and, end to end, against the real
simulator app served on a loopback port: the two must agree on the shape without any glue.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
import pytest_asyncio
from standardwebhooks.webhooks import Webhook

from service.core.ledger import TaskStatus
from service.core.signing import SignatureInvalid, encode_secret
from service.errors import ConfigError
from service.providers.base import Provider, ProviderConfig, ProviderRetryable, ProviderUpdate
from service.providers.simulator import SimulatorConfig, create_simulator_app
from service.providers.simulator_adapter import SimulatorProvider
from tests.providers.fakes.kie import FakeKie, callback_body
from tests.providers.support import API_KEY, make_task, served
from tests.servers import serve_app

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRET = encode_secret(b"simulator-secret-for-tests-0123456789")
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
TASK = "sim_0123456789abcdef"
BODY = callback_body(TASK, "success", resultJson=json.dumps({"resultUrls": ["https://s/0.png"]}))


def adapter(
    client: httpx.AsyncClient, base: str = "http://unused", secret: str | None = SECRET
) -> SimulatorProvider:
    config = ProviderConfig("simulator", base, api_key=API_KEY, webhook_key=secret, timeout_s=5.0)
    return SimulatorProvider(config, client)


def signed(body: bytes, *, secret: str = SECRET, at: datetime = NOW) -> dict[str, str]:
    """Headers as the reference Standard Webhooks library signs them."""
    msg_id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body.decode()),
    }


# -- callbacks ------------------------------------------------------------------------------


async def test_it_is_a_provider_that_trusts_its_signed_callbacks(
    http_client: httpx.AsyncClient,
) -> None:
    provider: Provider = adapter(http_client)
    assert (provider.name, provider.accepts_callbacks, provider.confirms_callbacks) == (
        "simulator",
        True,
        False,
    )


async def test_a_reference_signature_verifies(http_client: httpx.AsyncClient) -> None:
    sim = adapter(http_client)
    sim.verify_callback(signed(BODY), BODY, NOW_MS)
    assert sim.parse_callback(BODY) == ProviderUpdate(
        TASK, TaskStatus.SUCCEEDED, result_urls=("https://s/0.png",)
    )


async def test_a_tampered_body_fails(http_client: httpx.AsyncClient) -> None:
    forged = BODY.replace(b"success", b"fail")
    with pytest.raises(SignatureInvalid):
        adapter(http_client).verify_callback(signed(BODY), forged, NOW_MS)


async def test_a_tampered_timestamp_fails(http_client: httpx.AsyncClient) -> None:
    headers = signed(BODY)
    headers["webhook-timestamp"] = str(int(NOW.timestamp()) + 1)
    with pytest.raises(SignatureInvalid):
        adapter(http_client).verify_callback(headers, BODY, NOW_MS)


async def test_a_wrong_secret_fails(http_client: httpx.AsyncClient) -> None:
    other = encode_secret(b"somebody-else-entirely-0123456789")
    with pytest.raises(SignatureInvalid):
        adapter(http_client).verify_callback(signed(BODY, secret=other), BODY, NOW_MS)


@pytest.mark.parametrize("skew_s", [-301, 301])
async def test_a_stale_or_future_callback_fails(
    http_client: httpx.AsyncClient, skew_s: int
) -> None:
    at = datetime.fromtimestamp(NOW.timestamp() + skew_s, tz=UTC)
    with pytest.raises(SignatureInvalid, match="window"):
        adapter(http_client).verify_callback(signed(BODY, at=at), BODY, NOW_MS)


async def test_kie_style_headers_do_not_count(http_client: httpx.AsyncClient) -> None:
    headers = {"x-webhook-timestamp": str(NOW_MS // 1000), "x-webhook-signature": "abc"}
    with pytest.raises(SignatureInvalid, match="Missing"):
        adapter(http_client).verify_callback(headers, BODY, NOW_MS)


@pytest.mark.parametrize("secret", [None, "", "whsec_!!!", "whsec_"])
async def test_a_missing_or_bad_secret_stops_start_up(
    http_client: httpx.AsyncClient, secret: str | None
) -> None:
    with pytest.raises(ConfigError, match="TASKHOOK_SIMULATOR_SECRET"):
        adapter(http_client, secret=secret)


# -- requests -------------------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def kie_server() -> AsyncIterator[tuple[FakeKie, str]]:
    fake = FakeKie(API_KEY)
    async with served(fake) as url:
        yield fake, url


async def test_requests_use_our_model_names_and_one_spelling(
    kie_server: tuple[FakeKie, str], http_client: httpx.AsyncClient
) -> None:
    fake, base = kie_server
    fake.reset()
    sim = adapter(http_client, base)
    images = ("https://img.example.com/a.png",)
    task = make_task(
        model="nano-banana", images=images, num_images=3, seed=42, output_format="jpeg"
    )
    fake.answer_next(200, {"code": 200, "msg": "success", "data": {"taskId": TASK}})
    assert await sim.submit(task, "https://me.example.com/callbacks/simulator/tok") == TASK
    sent = fake.last
    assert (sent.path, sent.headers["authorization"]) == (
        "/api/v1/jobs/createTask",
        f"Bearer {API_KEY}",
    )
    assert sent.json == {
        "model": "nano-banana",
        "callBackUrl": "https://me.example.com/callbacks/simulator/tok",
        "input": {
            "prompt": task.spec.prompt,
            "aspect_ratio": "auto",
            "resolution": "1K",
            "output_format": "jpeg",
            "num_images": 3,
            "seed": 42,
            "image_urls": list(images),
        },
    }


# -- against the real simulator -------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def simulator_base() -> AsyncIterator[str]:
    config = SimulatorConfig(
        public_url="http://simulator.test", webhook_secret=SECRET, api_key=API_KEY, latency_ms=150
    )
    async with serve_app(create_simulator_app(config)) as base:
        yield base


async def _poll_until_done(sim: SimulatorProvider, task_id: str) -> ProviderUpdate:
    for _ in range(100):
        update = await sim.fetch_status(task_id)
        if update.status.terminal:
            return update
        await asyncio.sleep(0.05)
    raise AssertionError("the simulator never finished")


async def test_the_real_simulator_understands_the_adapter(
    simulator_base: str, http_client: httpx.AsyncClient
) -> None:
    sim = adapter(http_client, simulator_base)
    task = make_task(model="nano-banana-2", aspect_ratio="3:2", resolution="2k", num_images=2)
    task_id = await sim.submit(task, None)
    update = await _poll_until_done(sim, task_id)
    assert update.status is TaskStatus.SUCCEEDED
    assert len(update.result_urls) == 2
    change = update.change_for(task)
    assert {(r.content_type, r.width, r.height) for r in change.results} == {
        ("image/png", 2048, 1368)
    }


async def test_a_simulated_failure_reads_well(
    simulator_base: str, http_client: httpx.AsyncClient
) -> None:
    sim = adapter(http_client, simulator_base)
    task_id = await sim.submit(make_task(prompt="a pear [sim:fail]"), None)
    update = await _poll_until_done(sim, task_id)
    assert update.status is TaskStatus.FAILED
    assert update.failure is not None
    assert update.failure.code == "provider_failed"
    assert update.failure.message.startswith("simulator failed the task")


async def test_a_busy_simulator_is_retryable(
    simulator_base: str, http_client: httpx.AsyncClient
) -> None:
    sim = adapter(http_client, simulator_base)
    task = make_task(prompt="a plum [sim:busy]")
    for _ in range(2):
        with pytest.raises(ProviderRetryable) as caught:
            await sim.submit(task, None)
        assert caught.value.retry_after_s == 1.0
    assert await sim.submit(task, None)
