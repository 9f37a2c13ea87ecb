"""Result images: real files of the requested size and format, deterministic, served by URL."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from service.core.imagesize import dimensions
from tests.simulator.conftest import MODULE_LOOP, Receiver, Sim

pytestmark = MODULE_LOOP

PIL_FORMAT = {"png": "PNG", "jpeg": "JPEG"}


async def _download(sim: Sim, url: str) -> tuple[bytes, str]:
    response = await sim.http.get(url)
    assert response.status_code == 200, url
    return response.content, response.headers["content-type"]


async def test_callback_urls_download_as_images(sim: Sim, receiver: Receiver) -> None:
    await sim.task_id("a harbour", receiver.url, aspect_ratio="16:9", num_images=2, seed=1)
    calls = await receiver.wait_for(2)
    urls = json.loads(calls[-1].data["resultJson"])["resultUrls"]
    assert len(urls) == 2
    images = []
    for url in urls:
        data, content_type = await _download(sim, url)
        assert content_type == "image/png"
        image = Image.open(io.BytesIO(data))
        assert image.format == "PNG"
        assert image.size == dimensions("16:9", "1k") == (1024, 576)
        images.append(data)
    assert images[0] != images[1]


@pytest.mark.parametrize(
    ("aspect_ratio", "resolution", "output_format"),
    [
        ("9:16", "1k", "jpeg"),
        ("auto", "1K", "png"),
        ("16:9", "2k", "jpeg"),
        ("3:4", "2K", "png"),
        ("21:9", "1k", "png"),
    ],
)
async def test_images_have_the_requested_size_and_format(
    sim: Sim, aspect_ratio: str, resolution: str, output_format: str
) -> None:
    task_id = await sim.task_id(
        "mountains",
        aspect_ratio=aspect_ratio,
        resolution=resolution,
        output_format=output_format,
    )
    done = await sim.until_done(task_id)
    (url,) = json.loads(done["resultJson"])["resultUrls"]
    assert url.endswith(f"/0.{output_format}")
    data, content_type = await _download(sim, url)
    assert content_type == f"image/{output_format}"
    image = Image.open(io.BytesIO(data))
    assert image.format == PIL_FORMAT[output_format]
    assert image.size == dimensions(aspect_ratio, resolution.lower())


async def test_same_prompt_and_seed_give_identical_bytes(sim: Sim) -> None:
    first = await sim.task_id("a quiet lake", seed=42)
    again = await sim.task_id("a quiet lake", seed=42)
    other = await sim.task_id("a quiet lake", seed=43)
    a, _ = await _download(sim, sim.image_url(first))
    b, _ = await _download(sim, sim.image_url(again))
    c, _ = await _download(sim, sim.image_url(other))
    assert a == b
    assert a != c


async def test_unknown_images_are_404(sim: Sim) -> None:
    task_id = await sim.task_id("p", num_images=2)
    image = sim.image_url(task_id).removeprefix(sim.public_url).removesuffix("/0.png")
    for path in (
        "/images/img_unknown/0.png",
        f"{image}/2.png",
        f"{image}/0.jpeg",
        f"{image}/x.png",
    ):
        response = await sim.http.get(path)
        assert response.status_code == 404, path
