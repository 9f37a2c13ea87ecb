"""``[simulator] image_faults``: an image server that misbehaves, per image and for good.

A faulty image is chosen by a hash of its id and index: a transient 500 clears after one or two
requests, a 404 stays a 404, a slow one answers after 0.5 to 2 s. Off (0), every image is served
at once, as before. Over real HTTP (ASGI), on the simulator app alone.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from service.app import simulator_config
from service.providers.simulator import (
    ImageFault,
    SimulatorConfig,
    create_simulator_app,
    image_fault,
)
from service.settings import load_settings
from tests.conftest import settings_env
from tests.simulator.conftest import WEBHOOK_SECRET

BASE = "http://sim.test"


@pytest_asyncio.fixture
async def client_for() -> AsyncIterator[Any]:
    clients: list[httpx.AsyncClient] = []

    async def make(image_faults: float) -> httpx.AsyncClient:
        config = SimulatorConfig(
            public_url=BASE, webhook_secret=WEBHOOK_SECRET, image_faults=image_faults
        )
        app = create_simulator_app(config)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def _urls(client: httpx.AsyncClient, n: int) -> list[str]:
    """Result URLs of a job of ``n`` images (no callback: its state does not matter here)."""
    body = {"model": "nano-banana", "input": {"prompt": "a lighthouse", "num_images": n}}
    created = await client.post("/api/v1/jobs/createTask", json=body)
    assert created.status_code == 200, created.text
    job = client._transport.app.state.simulator.get(created.json()["data"]["taskId"])  # type: ignore[attr-defined]
    return list(job.result_urls(BASE))


def _fault(url: str, fraction: float = 1.0) -> Any:
    image_id, name = url.rsplit("/", 2)[-2:]
    return image_fault(image_id, int(name.split(".")[0]), fraction)


async def _one_of_each(client: httpx.AsyncClient) -> dict[ImageFault, str]:
    found: dict[ImageFault, str] = {}
    for _ in range(50):
        for url in await _urls(client, 4):
            found.setdefault(_fault(url).fault, url)
        if len(found) == 3:
            return found
    raise AssertionError(f"only {sorted(f.value for f in found)} in 200 images")


async def test_off_by_default_every_image_is_served_at_once(client_for: Any) -> None:
    client = await client_for(0.0)
    assert SimulatorConfig(public_url=BASE, webhook_secret=WEBHOOK_SECRET).image_faults == 0
    started = time.monotonic()
    for _ in range(5):
        for url in await _urls(client, 4):
            answer = await client.get(url)
            assert answer.status_code == 200, url
            assert answer.content[:4] == b"\x89PNG"
    assert time.monotonic() - started < 5


async def test_a_missing_image_is_404_every_time(client_for: Any) -> None:
    client = await client_for(1.0)
    url = (await _one_of_each(client))[ImageFault.MISSING]
    for _ in range(4):
        assert (await client.get(url)).status_code == 404


async def test_a_transient_500_clears_after_one_or_two_tries(client_for: Any) -> None:
    client = await client_for(1.0)
    url = (await _one_of_each(client))[ImageFault.TRANSIENT]
    failures = _fault(url).failures
    assert failures in (1, 2)
    statuses = [(await client.get(url)).status_code for _ in range(failures + 2)]
    assert statuses == [500] * failures + [200, 200]


async def test_a_slow_image_arrives_late_but_whole(client_for: Any) -> None:
    client = await client_for(1.0)
    url = (await _one_of_each(client))[ImageFault.SLOW]
    delay_s = _fault(url).delay_s
    assert 0.5 <= delay_s <= 2.0
    started = time.monotonic()
    answer = await client.get(url)
    assert answer.status_code == 200
    assert answer.content[:4] == b"\x89PNG"
    assert time.monotonic() - started >= delay_s - 0.01


def test_the_choice_is_stable_and_about_the_fraction() -> None:
    picks = [image_fault(f"img_{n}", n % 4, 0.15) for n in range(6000)]
    assert picks == [image_fault(f"img_{n}", n % 4, 0.15) for n in range(6000)]
    kinds = Counter(p.fault for p in picks)
    faulty = 6000 - kinds[ImageFault.NONE]
    assert 0.12 < faulty / 6000 < 0.18
    for kind in (ImageFault.TRANSIENT, ImageFault.MISSING, ImageFault.SLOW):
        assert 0.25 < kinds[kind] / faulty < 0.42
    assert {p.failures for p in picks if p.fault is ImageFault.TRANSIENT} == {1, 2}
    assert all(0.5 <= p.delay_s <= 2.0 for p in picks if p.fault is ImageFault.SLOW)
    assert all(image_fault(f"img_{n}", 0, 0.0).fault is ImageFault.NONE for n in range(500))


@pytest.mark.parametrize(("env", "want"), [({}, 0.0), ({"IMAGE_FAULTS": "0.15"}, 0.15)])
def test_the_setting_reaches_the_simulator(
    tmp_path: Path, env: dict[str, str], want: float
) -> None:
    extra = {f"TASKHOOK__SIMULATOR__{k}": v for k, v in env.items()}
    settings = load_settings(settings_env(tmp_path, **extra))
    assert settings.simulator.image_faults == want
    assert simulator_config(settings, BASE).image_faults == want
