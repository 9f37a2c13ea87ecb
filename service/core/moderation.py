"""Prompt screening: a cheap, deterministic first line of defence before a task is queued.

This is a term list, not a classifier. Its job is to refuse the obvious cases predictably, so
the hard parts are (a) not being defeated by trivial obfuscation (Unicode look-alikes, invisible
characters, spelled-out letters, leetspeak, stretched letters) and (b) not refusing innocent
prompts. Matching is therefore done on whole tokens, never substrings: that is what keeps
"assassin", "therapist" and "Scunthorpe" allowed.

The module is pure: rules come in as data (see ``config/moderation.toml``), and ``screen`` is a
function of the prompt and the rules alone.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

CATEGORIES: frozenset[str] = frozenset(
    {"sexual", "sexual_minors", "violence", "illegal_activity", "abuse"}
)

# Letters and digits, plus the two symbols that leetspeak uses inside words ("n@ked", "$ex").
_TOKEN_RE = re.compile(r"(?:[^\W_]|[@$])+")
# What may sit between spelled-out letters: "n u d e", "n.u.d.e", "n-u-d-e", "n_u_d_e", "n*u*d*e".
_SPELLING_GAP = re.compile(r"[\s.*_-]+")
# Runs of at least this many single-character tokens are read as one spelled-out word. Three,
# because English has two one-letter words ("a", "I") that often sit next to one other
# single character ("a 4k photo"), but three in a row almost never occur in a real prompt.
_MIN_SPELLED = 3
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
)
# A letter repeated at least this often may stand for the same letter written once or twice.
# Doubled letters are too common in real words ("as"/"ass", "kid"/"kidd") to treat as stretching.
_MIN_STRETCH = 3
_MIN_WILDCARD_STEM = 3
_RULE_KEYS = frozenset({"id", "category", "any_of", "all_of"})

_Runs = tuple[tuple[str, int], ...]


def normalise(prompt: str) -> tuple[str, ...]:
    """Return the token sequence that rules are matched against.

    Steps, in order: NFKC (full-width and compatibility forms become plain letters); drop
    format characters (zero-width space/joiners, word joiner, soft hyphen, BOM, bidi controls),
    which are invisible and so only ever there to split a word; casefold; strip accents (NFKD,
    drop non-spacing marks, NFC); split into tokens; join runs of spelled-out single characters.

    Leetspeak and stretched letters are deliberately *not* rewritten here: a token must still be
    able to match in its raw form, so those alternatives are tried at match time instead.
    """
    text = unicodedata.normalize("NFKC", prompt)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
    return _join_spelled_out(unicodedata.normalize("NFC", text))


def _join_spelled_out(text: str) -> tuple[str, ...]:
    tokens: list[str] = []
    run: list[str] = []
    end = 0
    for match in _TOKEN_RE.finditer(text):
        token = match.group()
        if run and not (len(token) == 1 and _SPELLING_GAP.fullmatch(text, end, match.start())):
            tokens.extend(_close_run(run))
            run = []
        if len(token) == 1:
            run.append(token)
        else:
            tokens.append(token)
        end = match.end()
    tokens.extend(_close_run(run))
    return tuple(tokens)


def _close_run(run: list[str]) -> list[str]:
    return ["".join(run)] if len(run) >= _MIN_SPELLED else run


def _runs(text: str) -> _Runs:
    return tuple((ch, sum(1 for _ in group)) for ch, group in groupby(text))


def _skeleton(runs: _Runs) -> str:
    return "".join(ch for ch, _ in runs)


def _forms(token: str) -> tuple[_Runs, ...]:
    """The spellings a prompt token may stand for: itself, and its de-leeted form.

    Only tokens that contain a letter are de-leeted, so numbers ("16", "1080") never turn into
    words; "4k" does become "ak", which is harmless because no term is that short and odd.
    """
    forms = [_runs(token)]
    if any(ch.isalpha() for ch in token):
        plain = token.translate(_LEET)
        if plain != token:
            forms.append(_runs(plain))
    return tuple(forms)


@dataclass(frozen=True)
class _Word:
    runs: _Runs
    prefix: bool

    def matches(self, form: _Runs) -> bool:
        n = len(self.runs)
        if len(form) != n and not (self.prefix and len(form) > n):
            return False
        for i, ((want_ch, want), (got_ch, got)) in enumerate(zip(self.runs, form[:n], strict=True)):
            if want_ch != got_ch:
                return False
            open_end = self.prefix and i == n - 1
            if got < want or (got > want and not open_end and got < _MIN_STRETCH):
                return False
        return True


_Term = tuple[_Word, ...]


@dataclass(frozen=True)
class _Prompt:
    forms: tuple[tuple[_Runs, ...], ...]
    by_skeleton: Mapping[str, tuple[int, ...]]

    @classmethod
    def scan(cls, prompt: str) -> _Prompt:
        forms = tuple(_forms(token) for token in normalise(prompt))
        index: dict[str, list[int]] = {}
        for pos, token_forms in enumerate(forms):
            for form in token_forms:
                index.setdefault(_skeleton(form), []).append(pos)
        return cls(forms, {key: tuple(pos) for key, pos in index.items()})

    def contains(self, term: _Term) -> bool:
        head, key = term[0], _skeleton(term[0].runs)
        starts = range(len(self.forms)) if head.prefix else self.by_skeleton.get(key, ())
        last_start = len(self.forms) - len(term)
        return any(
            start <= last_start
            and all(any(w.matches(f) for f in self.forms[start + i]) for i, w in enumerate(term))
            for start in starts
        )


class _RuleError(ValueError):
    """A bad rule field; ``Ruleset.from_mapping`` re-raises it with the rule's position."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}" if where else reason)
        self.where = where
        self.reason = reason


def _compile(term: str, where: str) -> _Term:
    """Turn a rule term into words, normalised exactly as prompts are so that both sides agree."""
    prefix = term.endswith("*")
    body = term.removesuffix("*")
    if "*" in body:
        raise _RuleError(where, f"term {term!r}: '*' is only allowed at the end")
    words = normalise(body)
    if not words:
        raise _RuleError(where, f"empty term {term!r}")
    if prefix and (not body[-1].isalnum() or len(words[-1]) < _MIN_WILDCARD_STEM):
        raise _RuleError(
            where, f"term {term!r}: '*' must follow a word of {_MIN_WILDCARD_STEM}+ letters"
        )
    last = len(words) - 1
    return tuple(_Word(_runs(word), prefix and i == last) for i, word in enumerate(words))


@dataclass(frozen=True)
class Rule:
    """One screening rule; ``any_of`` catches unambiguous terms, ``all_of`` catches combinations
    (e.g. a minor *and* a sexual term) whose parts are each innocent on their own.

    A term is a word or phrase; a phrase matches consecutive tokens. A trailing ``*`` makes the
    last word a prefix ("masturbat*"). Invalid rules raise ``ValueError`` on construction.
    """

    id: str
    category: str
    any_of: tuple[str, ...] = ()
    all_of: tuple[tuple[str, ...], ...] = ()
    _any_terms: tuple[_Term, ...] = field(init=False, repr=False, compare=False)
    _all_groups: tuple[tuple[_Term, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.id:
            raise _RuleError("id", "must be a non-empty string")
        if self.category not in CATEGORIES:
            raise _RuleError("category", f"unknown category {self.category!r}")
        if not self.any_of and not self.all_of:
            raise _RuleError("", f"rule {self.id!r} needs any_of or all_of")
        any_terms = tuple(_compile(t, f"any_of[{i}]") for i, t in enumerate(self.any_of))
        groups: list[tuple[_Term, ...]] = []
        for g, group in enumerate(self.all_of):
            if not group:
                raise _RuleError(f"all_of[{g}]", "empty group")
            groups.append(tuple(_compile(t, f"all_of[{g}][{i}]") for i, t in enumerate(group)))
        object.__setattr__(self, "_any_terms", any_terms)
        object.__setattr__(self, "_all_groups", tuple(groups))

    def _matches(self, prompt: _Prompt) -> bool:
        return any(map(prompt.contains, self._any_terms)) or (
            bool(self._all_groups)
            and all(any(map(prompt.contains, group)) for group in self._all_groups)
        )


@dataclass(frozen=True)
class Ruleset:
    """Rules in priority order: the first match decides the reported category, so put the most
    severe rules first."""

    rules: tuple[Rule, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.id in seen:
                raise ValueError(f"rules[{i}].id: duplicate id {rule.id!r}")
            seen.add(rule.id)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Ruleset:
        """Build from parsed TOML, rejecting anything suspicious rather than guessing: a typo in
        a key or a category would otherwise silently disable a rule."""
        unknown = sorted(str(key) for key in data if key != "rules")
        if unknown:
            raise ValueError(f"unknown top-level key {unknown[0]!r}")
        if "rules" not in data:
            raise ValueError("rules: missing")
        raw_rules = data["rules"]
        if not isinstance(raw_rules, list):
            raise ValueError("rules: expected an array of tables")
        return cls(tuple(_rule_from_mapping(raw, f"rules[{i}]") for i, raw in enumerate(raw_rules)))


def _rule_from_mapping(raw: object, where: str) -> Rule:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: expected a table, got {type(raw).__name__}")
    unknown = sorted(str(key) for key in raw if key not in _RULE_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}")
    for key in ("id", "category"):
        if key not in raw:
            raise ValueError(f"{where}.{key}: missing")
        if not isinstance(raw[key], str):
            raise ValueError(f"{where}.{key}: expected a string, got {type(raw[key]).__name__}")
    all_of = raw.get("all_of", [])
    if not isinstance(all_of, list):
        raise ValueError(f"{where}.all_of: expected an array of arrays of strings")
    try:
        return Rule(
            id=raw["id"],
            category=raw["category"],
            any_of=_strings(raw.get("any_of", []), f"{where}.any_of"),
            all_of=tuple(_strings(grp, f"{where}.all_of[{g}]") for g, grp in enumerate(all_of)),
        )
    except _RuleError as exc:
        path = f"{where}.{exc.where}" if exc.where else where
        raise ValueError(f"{path}: {exc.reason}") from exc


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{where}: expected an array of strings, got {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ValueError(f"{where}[{i}]: expected a string, got {type(item).__name__}")
    return tuple(value)


@dataclass(frozen=True)
class Verdict:
    """The outcome of screening; a refusal names the rule so it can be logged and audited."""

    allowed: bool
    rule_id: str | None = None
    category: str | None = None


def screen(prompt: str, rules: Ruleset) -> Verdict:
    """Screen ``prompt``; the first matching rule, in ruleset order, decides the verdict."""
    scanned = _Prompt.scan(prompt)
    for rule in rules.rules:
        if rule._matches(scanned):
            return Verdict(allowed=False, rule_id=rule.id, category=rule.category)
    return Verdict(allowed=True)
