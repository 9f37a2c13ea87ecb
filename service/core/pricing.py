"""What a task costs, from ``config/pricing.toml``.

Price = the model's per-image credits for the task type at 1k, times the resolution's multiplier
(rounded up to a whole credit), times the number of images. All figures live in config so that
pricing changes are configuration, not code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

TASK_TYPES = ("text-to-image", "edit")


@dataclass(frozen=True)
class PricingTable:
    #: model → task type → credits per image at 1k
    base: Mapping[str, Mapping[str, int]]
    #: resolution → multiplier (exact fractions: 1.5 must not become 1.4999…)
    resolutions: Mapping[str, Fraction]

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.base)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> PricingTable:
        """Build from parsed TOML; ``ValueError`` names the bad key."""
        unknown = set(data) - {"models", "resolutions"}
        if unknown:
            raise ValueError(f"unknown key {sorted(unknown)[0]!r}")
        models = data.get("models")
        if not isinstance(models, Mapping) or not models:
            raise ValueError("models: at least one model is required")
        base: dict[str, dict[str, int]] = {}
        for model, prices in models.items():
            if not isinstance(prices, Mapping) or set(prices) != set(TASK_TYPES):
                raise ValueError(f"models.{model}: needs exactly {', '.join(TASK_TYPES)}")
            for task_type, credits in prices.items():
                if isinstance(credits, bool) or not isinstance(credits, int) or credits < 0:
                    raise ValueError(f"models.{model}.{task_type}: must be a whole number ≥ 0")
            base[str(model)] = {str(k): int(v) for k, v in prices.items()}
        resolutions = data.get("resolutions")
        if not isinstance(resolutions, Mapping) or not resolutions:
            raise ValueError("resolutions: at least one resolution is required")
        multipliers: dict[str, Fraction] = {}
        for name, factor in resolutions.items():
            if (
                isinstance(factor, bool)
                or not isinstance(factor, int | float)
                or not math.isfinite(factor)
                or factor <= 0
            ):
                raise ValueError(f"resolutions.{name}: must be a positive number")
            multipliers[str(name)] = Fraction(str(factor))
        return cls(base=base, resolutions=multipliers)

    def price(self, model: str, task_type: str, resolution: str, num_images: int) -> int:
        """Credits for one task. ``KeyError`` for a model, type or resolution not in the table."""
        per_image = self.base[model][task_type] * self.resolutions[resolution]
        return math.ceil(per_image) * num_images
