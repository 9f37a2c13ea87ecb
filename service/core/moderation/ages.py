"""Expressions that state an age under 18, or a school grade: the ``@minor_age`` marker.

A term list cannot name every way of writing an age ("12 year old", "13yo", "aged nine",
"11 y/o", "fifteen-year-old", "5th grader", "grade five", "her 12th birthday"), so this reads
them structurally from the normalised tokens. It only *finds* ages; whether an age matters is
up to the rules that use the marker, so "a 12 year old's birthday cake" stays allowed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

ADULT_AGE = 18
_NUMBER_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
)  # fmt: skip
_ORDINAL_WORDS = (
    "zeroth", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
    "ninth", "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth",
    "sixteenth", "seventeenth", "eighteenth",
)  # fmt: skip
_NUMBERS = {word: n for n, word in enumerate(_NUMBER_WORDS)}
_ARTICLES = frozenset({"a", "an"})
_ORDINALS = {word: n for n, word in enumerate(_ORDINAL_WORDS)}
_ORDINAL_RE = re.compile(r"(\d{1,2})(?:st|nd|rd|th)")
# "13yo", "12yr", "9yrs", "10y", "4year", "6yearold": a number glued to its unit.
_GLUED_RE = re.compile(r"(\d{1,2})(?:yo|yr|yrs|y|year|years|yearold|yearolds|yro)")
# Units that need "old" (or "of age") after them, and units that carry it already.
_SPANS = frozenset({"year", "years", "yr", "yrs", "month", "months", "mo", "week", "weeks"})
_OLD = frozenset({"old", "olds"})
_SHORT = frozenset({"yo", "yro"})
_AGE_WORDS = frozenset({"age", "aged", "ages"})
_GRADE_WORDS = frozenset({"grade", "grades", "grader", "graders"})
_MAX_GRADE = 12
_UNDER = frozenset({"under", "below"})
# The words an age expression can start with, besides digits.
_STARTS = frozenset(_NUMBERS) | _ORDINALS.keys() | _ARTICLES | _AGE_WORDS | _GRADE_WORDS | _UNDER


def _number(token: str) -> int | None:
    if token.isdecimal() and len(token) <= 3:
        return int(token)
    return _NUMBERS.get(token)


def _ordinal(token: str) -> int | None:
    match = _ORDINAL_RE.fullmatch(token)
    return int(match.group(1)) if match else _ORDINALS.get(token)


def _minor(n: int | None) -> bool:
    return n is not None and n < ADULT_AGE


def minor_ages(tokens: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """Spans ``(start, end)`` of ``tokens`` that state an age under 18 or a school grade."""
    spans: list[tuple[int, int]] = []
    for i, token in enumerate(tokens):
        if not (token[0].isdigit() or token in _STARTS):
            continue
        end = _age_at(tokens, i, token)
        if end is not None:
            spans.append((i, end))
    return tuple(spans)


def _age_at(tokens: Sequence[str], i: int, token: str) -> int | None:
    """The end of a minor-age expression starting at ``tokens[i]``, if there is one."""

    def at(k: int) -> str:
        return tokens[k] if k < len(tokens) else ""

    glued = _GLUED_RE.fullmatch(token)
    if glued and _minor(int(glued.group(1))):
        return i + 1
    n = _number(token)
    if _minor(n):
        nxt = at(i + 1)
        if nxt in _SHORT or (nxt == "y" and at(i + 2) == "o"):
            return i + (2 if nxt in _SHORT else 3)
        if nxt in _SPANS and at(i + 2) in _OLD:
            return i + 3
        if nxt in _SPANS and at(i + 2) == "of" and at(i + 3) in _AGE_WORDS:
            return i + 4
    elif token in _ARTICLES and at(i + 1) in _SPANS and at(i + 2) in _OLD:
        return i + 3
    if token in _AGE_WORDS:
        k = i + 2 if at(i + 1) == "of" else i + 1
        if _minor(_number(at(k))):
            return k + 1
    if token in _UNDER and _number(at(i + 1)) == ADULT_AGE:
        return i + 2
    if token in _GRADE_WORDS and (_number(at(i + 1)) or 0) in range(1, _MAX_GRADE + 1):
        return i + 2
    grade = _ordinal(token)
    if grade is not None and at(i + 1) in _GRADE_WORDS and 1 <= grade <= _MAX_GRADE:
        return i + 2
    if _minor(grade) and at(i + 1) in ("birthday", "birthdays"):
        return i + 2
    return None
