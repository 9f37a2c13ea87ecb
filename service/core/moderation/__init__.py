"""Prompt screening: a cheap, deterministic first line of defence before a task is queued.

Rules name concepts, not spellings. Prompts and rule terms are normalised the same way (case,
accents, full-width letters, zero-width characters, spelled-out letters; look-alike letters,
leetspeak and stretched letters as alternatives), and compared by word stem, so one term
covers its inflections. Ages under 18 are read structurally (``ages``). Matching is on whole
tokens, never substrings: that is what keeps "assassin", "therapist" and "Scunthorpe" allowed.
Innocent compounds ("naked mole rat") are data, in the rules' ``unless`` lists.

The package is pure: rules come in as data (see ``config/moderation.toml``), and ``screen`` is
a function of the prompt and the rules alone. ``./scripts/moderation-eval`` measures it.
"""

from __future__ import annotations

from service.core.moderation.normalise import normalise
from service.core.moderation.rules import CATEGORIES, Rule, Ruleset, Verdict

__all__ = ["CATEGORIES", "Rule", "Ruleset", "Verdict", "normalise", "screen"]


def screen(prompt: str, rules: Ruleset) -> Verdict:
    """Screen ``prompt``: ``sexual_minors`` rules first, then the rest in ruleset order; the
    first matching rule decides the verdict."""
    return rules.screen(prompt)
