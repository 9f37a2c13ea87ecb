"""HTTP byte ranges (RFC 9110 §14): which part of an asset a ``Range`` header asks for.

Only a single range is served as 206; a header with several, or one that does not parse, is
ignored and the whole asset sent with 200 — what the RFC allows and what most file servers do,
since a multipart/byteranges answer is rarely wanted for an image.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``[start, end)`` of an asset of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end - 1}/{self.size}"


class Unsatisfiable(ValueError):
    """A well-formed range that lies wholly past the end of the asset (416)."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range ``header`` asks for, ``None`` to send it all, ``Unsatisfiable`` for 416."""
    if header is None:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if not first.isascii() or not last.isascii() or (first == "" and last == ""):
        return None
    if first == "":  # the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable(f"bytes */{size}")
        return ByteRange(max(0, size - suffix), size, size)
    start = int(first)
    end = size if last == "" else min(int(last) + 1, size)
    if last != "" and int(last) < start:
        return None  # invalid: ignored, as the RFC says
    if start >= size:
        raise Unsatisfiable(f"bytes */{size}")
    return ByteRange(start, end, size)
