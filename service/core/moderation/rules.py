"""Rules as data: what each rule says, how a ruleset is checked and compiled, and the verdict.

A rule matches on ``any_of`` (one term suffices) or ``all_of`` (a term from every group, in any
order, optionally ``within`` N tokens of each other). Named ``groups`` let a concept be written
once and used by several rules (``@minor``). ``unless`` lists innocent compounds ("naked mole
rat", "nude @shade", "chicken breast"): where one occurs, its words count for no term, so the
compound cannot trigger a rule — but every *other* word still does, so "a naked mole rat" is
allowed while "a naked mole rat beside a nude child" is not. Top-level ``unless`` applies to
every rule; a rule's own ``unless`` to that rule alone, and ``sexual_minors`` rules take none
and are always checked first: nothing outweighs a sexual marker next to a minor marker.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from service.core.moderation.normalise import normalise
from service.core.moderation.terms import (
    MINOR_AGE,
    Index,
    Span,
    Stemmer,
    Term,
    TermError,
    compile_term,
)

CATEGORIES: frozenset[str] = frozenset(
    {"sexual", "sexual_minors", "violence", "illegal_activity", "abuse"}
)
FIRST = "sexual_minors"
_GROUP_NAME = re.compile(r"[a-z][a-z0-9_]*")


def _identity(word: str) -> str:
    return word


class RuleError(ValueError):
    """A bad rule field; ``Ruleset.from_mapping`` re-raises it with the rule's position."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}" if where else reason)
        self.where = where
        self.reason = reason


def _check_terms(terms: tuple[str, ...], where: str) -> None:
    for i, term in enumerate(terms):
        try:
            if term != MINOR_AGE and not _GROUP_NAME.fullmatch(term.removeprefix("@")):
                compile_term(term, _identity, None)
        except TermError as exc:
            raise RuleError(f"{where}[{i}]", str(exc)) from None


@dataclass(frozen=True)
class Rule:
    """One screening rule. Terms are words or phrases (see ``terms``); invalid rules raise
    ``ValueError`` on construction, group names are resolved by the ``Ruleset``."""

    id: str
    category: str
    any_of: tuple[str, ...] = ()
    all_of: tuple[tuple[str, ...], ...] = ()
    unless: tuple[str, ...] = ()
    within: int | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise RuleError("id", "must be a non-empty string")
        if self.category not in CATEGORIES:
            raise RuleError("category", f"unknown category {self.category!r}")
        if not self.any_of and not self.all_of:
            raise RuleError("", f"rule {self.id!r} needs any_of or all_of")
        if self.unless and self.category == FIRST:
            raise RuleError("unless", f"{FIRST} rules take no unless: nothing outweighs them")
        if self.within is not None and (len(self.all_of) < 2 or self.within < 1):
            raise RuleError("within", "needs all_of with 2+ groups and a positive distance")
        _check_terms(self.any_of, "any_of")
        for g, group in enumerate(self.all_of):
            if not group:
                raise RuleError(f"all_of[{g}]", "empty group")
            _check_terms(group, f"all_of[{g}]")
        _check_terms(self.unless, "unless")


@dataclass(frozen=True)
class _Compiled:
    rule: Rule
    any_of: frozenset[int]
    all_of: tuple[frozenset[int], ...]
    unless: tuple[int, ...]

    def matches(self, found: Mapping[int, list[Span]], mask: frozenset[int]) -> bool:
        """Walks the (few) terms the prompt holds, not the (many) terms the rule names."""
        starts: list[list[int]] = [[] for _ in self.all_of]
        for i, spans in found.items():
            free = [s for s, e in spans if mask.isdisjoint(range(s, e))]
            if not free:
                continue
            if i in self.any_of:
                return True
            for g, group in enumerate(self.all_of):
                if i in group:
                    starts[g].extend(free)
        if not self.all_of or not all(starts):
            return False
        return self.rule.within is None or _window(starts) <= self.rule.within


def _window(starts: Sequence[Sequence[int]]) -> int:
    """The narrowest span of positions that holds a start from every group."""
    marks = sorted((pos, g) for g, group in enumerate(starts) for pos in group)
    counts: dict[int, int] = {}
    best = marks[-1][0] - marks[0][0]
    left = 0
    for pos, g in marks:
        counts[g] = counts.get(g, 0) + 1
        while len(counts) == len(starts):
            first, first_group = marks[left]
            best = min(best, pos - first)
            counts[first_group] -= 1
            if not counts[first_group]:
                del counts[first_group]
            left += 1
    return best


Groups = tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class Ruleset:
    """Rules, named groups of terms and innocent compounds, compiled once on construction.

    Rules are checked in order — ``sexual_minors`` rules first, wherever they are written — and
    the first match decides the reported category, so put the most severe rules first.
    """

    rules: tuple[Rule, ...]
    groups: Groups = ()
    unless: tuple[str, ...] = ()
    _order: tuple[_Compiled, ...] = field(init=False, repr=False, compare=False)
    _unless: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _index: Index = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.id in seen:
                raise ValueError(f"rules[{i}].id: duplicate id {rule.id!r}")
            seen.add(rule.id)
        _Compiler(self).install()

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Ruleset:
        """Build from parsed TOML, rejecting anything suspicious rather than guessing: a typo in
        a key or a category would otherwise silently disable a rule."""
        return _ruleset_from_mapping(cls, data)

    def screen(self, prompt: str) -> Verdict:
        """See ``screen``."""
        scan = self._index.scan(prompt)
        found = self._index.find(scan)
        if not found or not any(found.values()):
            return Verdict(allowed=True)
        base = _masked(found, self._unless)
        for compiled in self._order:
            mask = base | _masked(found, compiled.unless) if compiled.unless else base
            if compiled.matches(found, mask):
                rule = compiled.rule
                return Verdict(allowed=False, rule_id=rule.id, category=rule.category)
        return Verdict(allowed=True)


def _masked(found: Mapping[int, list[Span]], ids: Iterable[int]) -> frozenset[int]:
    return frozenset(pos for i in ids for s, e in found.get(i, ()) for pos in range(s, e))


class _Compiler:
    """Resolves groups, compiles every term once into one index, and wires rules to term ids."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.ruleset = ruleset
        self.stem = Stemmer()
        self.terms: list[Term | None] = []
        self.ids: dict[str, int] = {}
        self.words: set[str] = set()
        self.groups: dict[str, tuple[str, ...]] = {}
        self.slots: dict[str, frozenset[str]] = {}
        for g, (name, members) in enumerate(ruleset.groups):
            where = f"groups.{name}"
            if not _GROUP_NAME.fullmatch(name) or f"@{name}" == MINOR_AGE:
                raise ValueError(f"groups[{g}]: bad group name {name!r}")
            if name in self.groups:
                raise ValueError(f"{where}: duplicate group")
            if not members:
                raise ValueError(f"{where}: empty group")
            self.groups[name] = tuple(self._expand(members, where))

    def _expand(self, terms: Iterable[str], where: str) -> list[str]:
        out: list[str] = []
        for i, term in enumerate(terms):
            name = term.removeprefix("@")
            if term.startswith("@") and term != MINOR_AGE and _GROUP_NAME.fullmatch(name):
                if name not in self.groups:
                    raise ValueError(f"{where}[{i}]: unknown group {term!r}")
                out.extend(self.groups[name])
            else:
                out.append(term)
        return out

    def _slot(self, name: str) -> frozenset[str]:
        if name not in self.slots:
            members = self.groups[name]
            if any(len(m.split()) != 1 or m[0] in "@=" or m.endswith("*") for m in members):
                raise TermError(f"group '@{name}' used in a phrase must hold plain words only")
            self.slots[name] = frozenset(self.stem(w) for m in members for w in normalise(m))
        return self.slots[name]

    def _ids(self, terms: Iterable[str], where: str) -> tuple[int, ...]:
        out: list[int] = []
        for i, term in enumerate(self._expand(terms, where)):
            if term not in self.ids:
                try:
                    self.ids[term] = len(self.terms)
                    self.terms.append(None if term == MINOR_AGE else self._compile(term))
                except TermError as exc:
                    del self.ids[term]
                    raise ValueError(f"{where}[{i}]: {exc}") from None
            out.append(self.ids[term])
        return tuple(out)

    def _compile(self, term: str) -> Term:
        slots = {n: self._slot(n) for n in re.findall(r"@(\w+)", term) if n in self.groups}
        compiled, words = compile_term(term, self.stem, slots)
        self.words.update(words)
        return compiled

    def install(self) -> None:
        ruleset = self.ruleset
        unless = self._ids(ruleset.unless, "unless")
        compiled: list[_Compiled] = []
        for r, rule in enumerate(ruleset.rules):
            where = f"rules[{r}]"
            compiled.append(
                _Compiled(
                    rule=rule,
                    any_of=frozenset(self._ids(rule.any_of, f"{where}.any_of")),
                    all_of=tuple(
                        frozenset(self._ids(group, f"{where}.all_of[{g}]"))
                        for g, group in enumerate(rule.all_of)
                    ),
                    unless=self._ids(rule.unless, f"{where}.unless"),
                )
            )
        order = sorted(compiled, key=lambda c: c.rule.category != FIRST)
        index = Index.build(self.terms, self.words, self.stem)
        object.__setattr__(ruleset, "_order", tuple(order))
        object.__setattr__(ruleset, "_unless", unless)
        object.__setattr__(ruleset, "_index", index)


@dataclass(frozen=True)
class Verdict:
    """The outcome of screening; a refusal names the rule so it can be logged and audited."""

    allowed: bool
    rule_id: str | None = None
    category: str | None = None


_TOP_KEYS = frozenset({"rules", "groups", "unless"})
_RULE_KEYS = frozenset({"id", "category", "any_of", "all_of", "unless", "within"})


def _ruleset_from_mapping(cls: type[Ruleset], data: Mapping[str, Any]) -> Ruleset:
    unknown = sorted(str(key) for key in data if key not in _TOP_KEYS)
    if unknown:
        raise ValueError(f"unknown top-level key {unknown[0]!r}")
    if "rules" not in data:
        raise ValueError("rules: missing")
    raw_rules = data["rules"]
    if not isinstance(raw_rules, list):
        raise ValueError("rules: expected an array of tables")
    raw_groups = data.get("groups", {})
    if not isinstance(raw_groups, Mapping):
        raise ValueError("groups: expected a table of arrays of strings")
    groups = tuple(
        (str(name), _strings(members, f"groups.{name}")) for name, members in raw_groups.items()
    )
    return cls(
        rules=tuple(_rule_from_mapping(raw, f"rules[{i}]") for i, raw in enumerate(raw_rules)),
        groups=groups,
        unless=_strings(data.get("unless", []), "unless"),
    )


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
    within = raw.get("within")
    if within is not None and (not isinstance(within, int) or isinstance(within, bool)):
        raise ValueError(f"{where}.within: expected an integer, got {type(within).__name__}")
    try:
        return Rule(
            id=raw["id"],
            category=raw["category"],
            any_of=_strings(raw.get("any_of", []), f"{where}.any_of"),
            all_of=tuple(_strings(grp, f"{where}.all_of[{g}]") for g, grp in enumerate(all_of)),
            unless=_strings(raw.get("unless", []), f"{where}.unless"),
            within=within,
        )
    except RuleError as exc:
        path = f"{where}.{exc.where}" if exc.where else where
        raise ValueError(f"{path}: {exc.reason}") from exc


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{where}: expected an array of strings, got {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ValueError(f"{where}[{i}]: expected a string, got {type(item).__name__}")
    return tuple(value)
