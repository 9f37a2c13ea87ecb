"""Output dimensions for an aspect ratio and resolution.

The long side is the resolution (1k = 1024, 2k = 2048, 4k = 4096); the short side follows the
ratio, rounded to a multiple of 8 as image models do. ``auto`` is square.
"""

from __future__ import annotations

LONG_SIDE = {"1k": 1024, "2k": 2048, "4k": 4096}
CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg"}


def dimensions(aspect_ratio: str, resolution: str) -> tuple[int, int]:
    """``(width, height)``; ``KeyError``/``ValueError`` for values validation would refuse."""
    long_side = LONG_SIDE[resolution]
    if aspect_ratio == "auto":
        return long_side, long_side
    w_text, _, h_text = aspect_ratio.partition(":")
    w, h = int(w_text), int(h_text)
    if w <= 0 or h <= 0:
        raise ValueError(f"bad aspect ratio {aspect_ratio!r}")
    short = max(8, round(long_side * min(w, h) / max(w, h) / 8) * 8)
    return (long_side, short) if w >= h else (short, long_side)
