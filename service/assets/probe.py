"""Reading a staged image's type and dimensions from the file itself (Pillow reads only the
header, however large the image)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from service.core.images import IMAGE_TYPES

_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


@dataclass(frozen=True)
class ImageInfo:
    content_type: str
    width: int
    height: int


class NotAnImage(ValueError):
    """The file is not a PNG, JPEG or WebP image Pillow can read the header of."""


def probe(path: Path) -> ImageInfo:
    try:
        with Image.open(path) as image:
            content_type = _FORMATS.get(image.format or "")
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise NotAnImage(f"not a readable image ({type(exc).__name__})") from None
    except Image.DecompressionBombError:
        raise NotAnImage("the image's dimensions are beyond any model's output") from None
    if content_type not in IMAGE_TYPES or width <= 0 or height <= 0:
        raise NotAnImage("not a PNG, JPEG or WebP image")
    return ImageInfo(content_type, width, height)


async def probe_async(path: Path) -> ImageInfo:
    """``probe`` off the event loop (the header read is file I/O)."""
    return await asyncio.to_thread(probe, path)
