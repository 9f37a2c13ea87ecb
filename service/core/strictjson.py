"""JSON we can always write back: no NaN or Infinity, no lone surrogates, bounded nesting.

``json.loads`` accepts all three, and each later breaks something far from the parse: a 500
when the value is rendered, a failed insert, a signature over bytes that cannot be re-encoded.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def loads(raw: bytes) -> Any:
    """Parse UTF-8 JSON strictly; ``ValueError`` (incl. ``UnicodeError``) for anything else."""
    try:
        value = json.loads(
            raw.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float
        )
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if _SURROGATE_ESCAPE.search(raw):
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # lone surrogates raise here
    return value
