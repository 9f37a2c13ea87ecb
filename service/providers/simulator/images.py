"""Real, deterministic images for the simulator's result URLs.

A client of taskhook should be able to open, measure and display what a task produced, so the
simulator serves genuine PNG/JPEG files of the size the task asked for, not placeholders. Each
picture is a two-colour gradient with a few shapes on top, every choice taken from a SHAKE-256
digest of (prompt, seed, index): the same request always yields the same bytes (handy for
caching and snapshot tests) while different seeds visibly differ.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections import OrderedDict
from dataclasses import dataclass

from PIL import Image, ImageDraw

from service.core.imagesize import CONTENT_TYPES, dimensions

#: Pillow's encoder name for each output format.
_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG"}


@dataclass(frozen=True)
class ImageSpec:
    """Everything that determines one image's bytes (and therefore its cache key)."""

    prompt: str
    seed: int | None
    index: int
    aspect_ratio: str
    resolution: str
    output_format: str

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` exactly as taskhook's ``dimensions`` computes it."""
        return dimensions(self.aspect_ratio, self.resolution)

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.output_format]


def _digest(spec: ImageSpec, length: int) -> bytes:
    seed = "none" if spec.seed is None else str(spec.seed)
    material = f"taskhook-sim\x00{spec.prompt}\x00{seed}\x00{spec.index}".encode()
    return hashlib.shake_256(material).digest(length)


def _colour(data: bytes) -> tuple[int, int, int]:
    return data[0], data[1], data[2]


def _background(size: tuple[int, int], digest: bytes) -> Image.Image:
    """A smooth gradient between two colours, in one of four directions."""
    width, height = size
    mask = Image.linear_gradient("L")  # 256x256, dark at the top
    direction = digest[6] % 4
    if direction == 1:
        mask = mask.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    elif direction == 2:
        mask = mask.transpose(Image.Transpose.ROTATE_90)
    elif direction == 3:
        mask = mask.transpose(Image.Transpose.ROTATE_270)
    mask = mask.resize((width, height), Image.Resampling.BILINEAR)
    start = Image.new("RGB", size, _colour(digest[0:3]))
    end = Image.new("RGB", size, _colour(digest[3:6]))
    return Image.composite(end, start, mask)


def _draw_shapes(image: Image.Image, digest: bytes) -> None:
    """Three to six ellipses, rectangles or triangles placed by the digest."""
    width, height = image.size
    short = min(width, height)
    draw = ImageDraw.Draw(image)
    count = 3 + digest[7] % 4
    for n in range(count):
        part = digest[8 + n * 8 : 16 + n * 8]
        kind = part[0] % 3
        cx = part[1] * width // 255
        cy = part[2] * height // 255
        radius = max(4, short * (8 + part[3] % 24) // 100)
        fill = _colour(part[4:7])
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        if kind == 0:
            draw.ellipse(box, fill=fill)
        elif kind == 1:
            draw.rectangle(box, fill=fill)
        else:
            points = [(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)]
            draw.polygon(points, fill=fill)


def render(spec: ImageSpec) -> bytes:
    """Encode the image ``spec`` describes. CPU-bound: call it from a worker thread."""
    digest = _digest(spec, 64)
    image = _background(spec.size, digest)
    _draw_shapes(image, digest)
    out = io.BytesIO()
    if spec.output_format == "jpeg":
        image.save(out, format=_PIL_FORMATS["jpeg"], quality=90)
    else:
        # Level 1 keeps 4k renders fast; the smooth picture still compresses well.
        image.save(out, format=_PIL_FORMATS["png"], compress_level=1)
    return out.getvalue()


class ImageCache:
    """A small LRU of rendered images, bounded in entries and in bytes.

    A 4k PNG costs real CPU to produce and clients tend to fetch each result more than once
    (a webhook consumer, then a browser), so recent renders are kept; the byte bound stops a
    burst of 4k requests from holding hundreds of megabytes. Concurrent requests for an image
    being rendered share the one render.
    """

    def __init__(self, max_entries: int = 32, max_bytes: int = 128 * 1024 * 1024) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._entries: OrderedDict[ImageSpec, bytes] = OrderedDict()
        self._bytes = 0
        self._pending: dict[ImageSpec, asyncio.Future[bytes]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, spec: ImageSpec) -> bytes:
        """The bytes for ``spec``, rendered in a worker thread on a miss."""
        cached = self._entries.get(spec)
        if cached is not None:
            self._entries.move_to_end(spec)
            return cached
        pending = self._pending.get(spec)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[spec] = future
        try:
            data = await asyncio.to_thread(render, spec)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # mark it retrieved: there may be nobody else waiting
            raise
        finally:
            del self._pending[spec]
        future.set_result(data)
        self._store(spec, data)
        return data

    def _store(self, spec: ImageSpec, data: bytes) -> None:
        if len(data) > self._max_bytes:
            return
        self._entries[spec] = data
        self._bytes += len(data)
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= len(evicted)
