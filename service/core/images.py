"""What kind of image a file is, from its first bytes (its magic number), not from what anyone
says it is: a provider's ``Content-Type``, an uploader's header or a URL's extension can all
be wrong, and an HTML error page served with 200 must not be kept as a result."""

from __future__ import annotations

#: the types taskhook keeps
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
#: bytes enough to tell them apart
SNIFF_BYTES = 12


def sniff(head: bytes) -> str | None:
    """The image type ``head`` (a file's first ``SNIFF_BYTES`` bytes) starts, or ``None``."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None
