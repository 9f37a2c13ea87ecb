"""Terms compiled once into an index, and a prompt scanned once into positions to look them up.

A term names a word form once: each of its words is reduced to its Snowball (Porter2) English
stem, and so is every spelling a prompt token may stand for, so "sexual" also catches "sexually"
and "sexualized", "molest" catches "molested", "molesting" and "molestation", and "rape"
catches "raped", "rapes" and "raping". Matching stays whole-word: a stem is compared with a
stem, never searched inside a token, which is what keeps "assassin", "therapist", "class" and
"Scunthorpe" clear. Word syntax inside a term:

* ``word``   — any inflection of the word (same stem);
* ``word*``  — any token that starts with ``word`` (3+ letters), for families the stemmer does
  not join ("pedophil*": pedophile, pedophilia, pedophilic);
* ``=word``  — exactly this form (still de-obfuscated), for when a stem is too wide: "execute"
  and "executive" share one;
* ``@name``  — one word from the group ``name`` (see ``rules``); a whole term ``@name`` is the
  group itself, and ``@minor_age`` is the age-under-18 marker of ``ages``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import snowballstemmer

from service.core.moderation.ages import minor_ages
from service.core.moderation.normalise import normalise, spellings, tokens

MINOR_AGE = "@minor_age"
_MIN_PREFIX = 3
# Spelled-out runs ("k i l l y o u r s e l f") are split back into the rule words they are made
# of; words this short, or this common, would split innocent runs ("t h e r a p i s t").
_MIN_SPLIT_WORD = 3
# Longer runs are left whole: splitting is quadratic, and nobody spells out a paragraph.
_MAX_SPLIT = 60
_SPLIT_STOPWORDS = frozenset(
    {
        "the", "and", "all", "for", "you", "her", "him", "his", "how", "with", "from", "into",
        "she", "out", "off", "are", "not", "was", "who", "its",
    }
)  # fmt: skip

# One element of a compiled term: (kind, value). Kinds: "s" stem, "p" prefix, "e" exact form,
# "g" a set of stems (a group slot).
Element = tuple[str, str | frozenset[str]]
Term = tuple[Element, ...]
Span = tuple[int, int]


class TermError(ValueError):
    """A bad term; the rule loader re-raises it with the term's position."""


class Stemmer:
    """The Snowball English stemmer, one instance per thread: PyStemmer's objects (which
    ``snowballstemmer`` hands out when it is installed) keep a cache and are not thread-safe."""

    def __init__(self) -> None:
        self._local = threading.local()

    def __call__(self, word: str) -> str:
        return self.here()(word)

    def here(self) -> Callable[[str], str]:
        """This thread's stemming function."""
        stem: Callable[[str], str] | None = getattr(self._local, "stem", None)
        if stem is None:
            stem = snowballstemmer.stemmer("english").stemWord
            self._local.stem = stem
        return stem


@dataclass(frozen=True)
class Scan:
    """A prompt read once: per position, its possible spellings and their stems; age spans."""

    forms: tuple[frozenset[str], ...]
    stems: tuple[frozenset[str], ...]
    ages: tuple[Span, ...]


def compile_term(
    term: str, stem: Callable[[str], str], slots: Mapping[str, frozenset[str]] | None
) -> tuple[Term, tuple[str, ...]]:
    """A term's elements, and its plain words (for splitting spelled-out runs). With ``slots``
    None, group names are not resolved (syntax check only)."""
    if not any(raw.startswith("@") for raw in term.split()) and not normalise(
        term.replace("*", "").replace("=", "")
    ):
        raise TermError(f"empty term {term!r}")
    elements: list[Element] = []
    plain: list[str] = []
    for raw in term.split():
        if raw.startswith("@"):
            elements.append(("g", _slot(term, raw[1:], slots)))
            continue
        exact, prefix = raw.startswith("="), raw.endswith("*")
        body = raw.removeprefix("=").removesuffix("*")
        if "*" in body:
            raise TermError(f"term {term!r}: '*' is only allowed at the end of a word")
        if "=" in body or (exact and prefix):
            raise TermError(f"term {term!r}: '=' is only allowed at the start of a word")
        words = normalise(body)
        if prefix and (not words or not body[-1].isalnum() or len(words[-1]) < _MIN_PREFIX):
            raise TermError(f"term {term!r}: '*' must follow a word of {_MIN_PREFIX}+ letters")
        if exact and len(words) != 1:
            raise TermError(f"term {term!r}: {raw!r} must be a single word")
        for k, word in enumerate(words):
            last = k == len(words) - 1
            kind = "p" if prefix and last else "e" if exact else "s"
            elements.append((kind, stem(word) if kind == "s" else word))
            plain.append(word)
    return tuple(elements), tuple(plain)


def _slot(term: str, name: str, slots: Mapping[str, frozenset[str]] | None) -> frozenset[str]:
    if f"@{name}" == MINOR_AGE:
        raise TermError(f"term {term!r}: {MINOR_AGE} is a whole term, not part of a phrase")
    if slots is None:
        return frozenset()
    if name not in slots:
        raise TermError(f"term {term!r}: unknown group '@{name}'")
    return slots[name]


@dataclass(frozen=True)
class Index:
    """Every compiled term, findable by the head of its first element."""

    terms: tuple[Term, ...]
    by_stem: Mapping[str, tuple[int, ...]]
    by_exact: Mapping[str, tuple[int, ...]]
    by_prefix: Mapping[str, tuple[tuple[str, int], ...]]
    age_terms: tuple[int, ...]
    split_words: frozenset[str]
    stem: Stemmer

    @classmethod
    def build(cls, terms: Sequence[Term | None], words: Iterable[str], stem: Stemmer) -> Index:
        """``None`` in ``terms`` stands for the ``@minor_age`` marker."""
        by_stem: dict[str, list[int]] = {}
        by_exact: dict[str, list[int]] = {}
        by_prefix: dict[str, list[tuple[str, int]]] = {}
        ages: list[int] = []
        compiled: list[Term] = []
        for i, term in enumerate(terms):
            compiled.append(term or ())
            if term is None:
                ages.append(i)
                continue
            kind, value = term[0]
            if isinstance(value, frozenset):
                for key in value:
                    by_stem.setdefault(key, []).append(i)
            elif kind == "s":
                by_stem.setdefault(value, []).append(i)
            elif kind == "e":
                by_exact.setdefault(value, []).append(i)
            else:
                by_prefix.setdefault(value[:_MIN_PREFIX], []).append((value, i))
        split = {w for w in words if len(w) >= _MIN_SPLIT_WORD and w not in _SPLIT_STOPWORDS}
        return cls(
            terms=tuple(compiled),
            by_stem={k: tuple(v) for k, v in by_stem.items()},
            by_exact={k: tuple(v) for k, v in by_exact.items()},
            by_prefix={k: tuple(v) for k, v in by_prefix.items()},
            age_terms=tuple(ages),
            split_words=frozenset(split | {w + "s" for w in split}),
            stem=stem,
        )

    def scan(self, prompt: str) -> Scan:
        words: list[str] = []
        forms: list[frozenset[str]] = []
        for token, spelled in tokens(prompt):
            options = spellings(token)
            parts = self._split(options) if spelled else None
            for part in parts or (token,):
                words.append(part)
                forms.append(spellings(part) if parts else options)
        stem = self.stem.here()
        stems = tuple(frozenset(map(stem, group)) for group in forms)
        return Scan(tuple(forms), stems, minor_ages(words))

    def _split(self, options: frozenset[str]) -> tuple[str, ...] | None:
        """Split a spelled-out run into 2+ rule words, if one of its spellings is exactly that."""
        longest = max(map(len, self.split_words), default=0)
        for option in sorted(options):
            if len(option) > _MAX_SPLIT:
                continue
            best: list[tuple[str, ...] | None] = [()] + [None] * len(option)
            for end in range(1, len(option) + 1):
                for start in range(max(0, end - longest), end):
                    prefix = best[start]
                    if prefix is not None and option[start:end] in self.split_words:
                        best[end] = (*prefix, option[start:end])
                        break
            found = best[-1]
            if found is not None and len(found) >= 2:
                return found
        return None

    def find(self, scan: Scan) -> dict[int, list[Span]]:
        """Every occurrence of every term in the scanned prompt, as spans of positions."""
        found: dict[int, list[Span]] = {i: list(scan.ages) for i in self.age_terms if scan.ages}
        for pos, (forms, stems) in enumerate(zip(scan.forms, scan.stems, strict=True)):
            heads: set[int] = set()
            for key in stems:
                heads.update(self.by_stem.get(key, ()))
            for form in forms:
                heads.update(self.by_exact.get(form, ()))
                for prefix, i in self.by_prefix.get(form[:_MIN_PREFIX], ()):
                    if form.startswith(prefix):
                        heads.add(i)
            for i in heads:
                term = self.terms[i]
                if all(_matches(el, scan, pos + k) for k, el in enumerate(term[1:], 1)):
                    found.setdefault(i, []).append((pos, pos + len(term)))
        return found


def _matches(element: Element, scan: Scan, pos: int) -> bool:
    if pos >= len(scan.forms):
        return False
    kind, value = element
    if isinstance(value, frozenset):
        return not value.isdisjoint(scan.stems[pos])
    if kind == "s":
        return value in scan.stems[pos]
    if kind == "e":
        return value in scan.forms[pos]
    return any(form.startswith(value) for form in scan.forms[pos])
