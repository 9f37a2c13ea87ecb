"""The prompt screen measured on labelled prompts: recall per category and false positives.

The labelled sets live in ``eval/moderation/`` (format in their headers): ``dev.toml``, the
one rules were tuned on, and ``check.toml``, written first and never tuned against, so the
gap between the two estimates how well the rules generalise. ``scripts/moderation-eval``
prints the figures; ``tests/moderation`` holds the floors below.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from service.core.moderation import CATEGORIES, Ruleset, screen

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "config" / "moderation.toml"
SETS = {"dev": ROOT / "eval/moderation/dev.toml", "check": ROOT / "eval/moderation/check.toml"}
ALLOWED = "allowed"
LABELS = (*sorted(CATEGORIES), ALLOWED)
# The goals of issue 18, held by the tests on every set.
FLOORS = {"sexual_minors": 0.98, "overall": 0.95}
MAX_FALSE_POSITIVES = 0.02


@dataclass(frozen=True)
class Case:
    prompt: str
    label: str


@dataclass(frozen=True)
class Miss:
    """A prompt screened the wrong way: a category prompt allowed, or an allowed one refused."""

    case: Case
    rule_id: str | None


@dataclass(frozen=True)
class Report:
    name: str
    totals: Mapping[str, int]
    caught: Mapping[str, int]
    misses: tuple[Miss, ...] = field(default=())

    def recall(self, label: str) -> float:
        return self.caught[label] / self.totals[label] if self.totals[label] else 1.0

    @property
    def overall_recall(self) -> float:
        total = sum(self.totals[c] for c in CATEGORIES)
        return sum(self.caught[c] for c in CATEGORIES) / total if total else 1.0

    @property
    def false_positives(self) -> int:
        return self.caught[ALLOWED]

    @property
    def false_positive_rate(self) -> float:
        return self.caught[ALLOWED] / self.totals[ALLOWED] if self.totals[ALLOWED] else 0.0

    def failures(self) -> list[str]:
        """The floors this set misses, in words; empty when all hold."""
        out = []
        if self.recall("sexual_minors") < FLOORS["sexual_minors"]:
            out.append(f"sexual_minors recall {self.recall('sexual_minors'):.3f} < 0.98")
        if self.overall_recall < FLOORS["overall"]:
            out.append(f"overall recall {self.overall_recall:.3f} < 0.95")
        if self.false_positive_rate > MAX_FALSE_POSITIVES:
            out.append(f"false positives {self.false_positive_rate:.3f} > 0.02")
        return out


def load_rules(path: Path = RULES) -> Ruleset:
    return Ruleset.from_mapping(tomllib.loads(path.read_text(encoding="utf-8")))


def load_cases(path: Path) -> tuple[Case, ...]:
    """Read a labelled set, strictly: an unknown label or key is an error, naming it."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    cases: list[Case] = []
    for label, table in data.items():
        if label not in LABELS:
            raise ValueError(f"{path.name}: unknown label {label!r}")
        if not isinstance(table, dict) or set(table) != {"prompts"}:
            raise ValueError(f"{path.name}: [{label}] must hold exactly one key, 'prompts'")
        prompts = table["prompts"]
        if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
            raise ValueError(f"{path.name}: [{label}].prompts must be an array of strings")
        cases.extend(Case(prompt, label) for prompt in prompts)
    return tuple(cases)


def evaluate(name: str, cases: Iterable[Case], rules: Ruleset) -> Report:
    totals = dict.fromkeys(LABELS, 0)
    caught = dict.fromkeys(LABELS, 0)
    misses: list[Miss] = []
    for case in cases:
        verdict = screen(case.prompt, rules)
        totals[case.label] += 1
        if not verdict.allowed:
            caught[case.label] += 1
        if verdict.allowed == (case.label != ALLOWED):
            misses.append(Miss(case, verdict.rule_id))
    return Report(name, totals, caught, tuple(misses))
