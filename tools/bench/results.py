"""What a scenario hands back: figures per run, the checks of its own work, and notes.

A ``Metric`` keeps every run's value, not just a summary, so the report can show the median
with the spread (one number hides a noisy machine) and the JSON keeps the raw runs. A ``Check``
is a verification (applied callbacks = 2xx answers, deliveries = receiver hits, …): a benchmark
whose work was not all done has measured nothing, so a failed check fails ``--strict`` like a
missed target.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by the nearest-rank method; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Metric:
    scenario: str
    name: str
    unit: str
    values: list[float] = field(default_factory=list)
    #: (">=" or "<=", bound); None for a figure reported without a target
    target: tuple[str, float] | None = None
    note: str = ""
    #: the store it was measured on ("" or "SQLite", "PostgreSQL"): the table sets a
    #: PostgreSQL figure beside its SQLite twin (same scenario and name), with their ratio
    backend: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else math.nan

    @property
    def low(self) -> float:
        return min(self.values) if self.values else math.nan

    @property
    def high(self) -> float:
        return max(self.values) if self.values else math.nan

    @property
    def passed(self) -> bool | None:
        """Judged on the median; None when there is no target."""
        if self.target is None:
            return None
        if math.isnan(self.median):
            return False
        op, bound = self.target
        return self.median >= bound if op == ">=" else self.median <= bound

    def as_dict(self) -> dict[str, object]:
        return {
            "scenario": self.scenario,
            "metric": self.name,
            "unit": self.unit,
            "median": _finite(self.median),
            "min": _finite(self.low),
            "max": _finite(self.high),
            "runs": [_finite(v) for v in self.values],
            "target": None if self.target is None else f"{self.target[0]} {self.target[1]:g}",
            "passed": self.passed,
            "note": self.note,
            "backend": self.backend,
        }


@dataclass(frozen=True)
class Check:
    scenario: str
    what: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"scenario": self.scenario, "check": self.what, "ok": self.ok, "detail": self.detail}


@dataclass
class Outcome:
    """Everything one scenario found."""

    metrics: list[Metric] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def metric(self, metric: Metric) -> Metric:
        self.metrics.append(metric)
        return metric

    def check(self, scenario: str, what: str, expected: object, got: object) -> bool:
        ok = expected == got
        self.checks.append(Check(scenario, what, ok, f"expected {expected}, got {got}"))
        return ok

    def check_within(self, scenario: str, what: str, low: int, high: int, got: int) -> bool:
        """Like ``check``, for a count known only within bounds."""
        ok = low <= got <= high
        expected = str(low) if low == high else f"{low} to {high}"
        self.checks.append(Check(scenario, what, ok, f"expected {expected}, got {got}"))
        return ok

    def extend(self, other: Outcome) -> None:
        self.metrics.extend(other.metrics)
        self.checks.extend(other.checks)
        self.notes.extend(other.notes)


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)
