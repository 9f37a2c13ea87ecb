"""Rendering and the image cache, without HTTP."""

from __future__ import annotations

import io

from PIL import Image

from service.providers.simulator.images import ImageCache, ImageSpec, render


def test_render_is_deterministic_and_seed_sensitive() -> None:
    spec = ImageSpec("a cat", 7, 0, "4:3", "1k", "png")
    assert render(spec) == render(spec)
    assert render(spec) != render(ImageSpec("a cat", 8, 0, "4:3", "1k", "png"))
    assert render(spec) != render(ImageSpec("a cat", 7, 1, "4:3", "1k", "png"))
    assert render(spec) != render(ImageSpec("a cat", None, 0, "4:3", "1k", "png"))


def test_render_jpeg_is_deterministic() -> None:
    spec = ImageSpec("a dog", None, 0, "1:1", "1k", "jpeg")
    data = render(spec)
    assert data == render(spec)
    assert Image.open(io.BytesIO(data)).format == "JPEG"


async def test_cache_is_bounded_and_reuses_renders() -> None:
    cache = ImageCache(max_entries=2)
    specs = [ImageSpec(f"p{i}", 1, 0, "1:1", "1k", "png") for i in range(3)]
    first = await cache.get(specs[0])
    assert await cache.get(specs[0]) is first
    for spec in specs[1:]:
        await cache.get(spec)
    assert len(cache) == 2
    assert await cache.get(specs[0]) == first  # evicted, rendered again, same bytes


async def test_cache_byte_bound_evicts() -> None:
    small = ImageCache(max_entries=10, max_bytes=1)
    await small.get(ImageSpec("p", 1, 0, "1:1", "1k", "png"))
    assert len(small) == 0
