"""From a prompt to the tokens rules are matched against, and the spellings each may stand for.

Two layers, kept apart on purpose. ``normalise`` undoes what is *invisible or cosmetic* and can
be undone for certain: compatibility forms (full-width letters), format characters (zero-width
space and joiners, soft hyphen, bidi controls), case, accents, and letters spelled out one by one
("n.u.d.e"). ``spellings`` then lists what a token *may* stand for — its look-alike-letter,
leetspeak and de-stretched forms — as alternatives tried next to the token itself, never in its
place: "4k" must stay "4k", "16" must stay a number, and "class" must never lose its doubled "s".
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterator
from itertools import groupby, product

from confusable_homoglyphs import confusables

# Letters and digits, plus the symbols leetspeak uses inside words ("n@ked", "$ex", "k!ddie");
# "!" only between word characters, so "wow!" stays "wow".
_TOKEN_RE = re.compile(r"(?:[^\W_]|[@$])+(?:!+(?:[^\W_]|[@$])+)*")
# What may sit between spelled-out letters: "n u d e", "n.u.d.e", "n-u-d-e", "n_u_d_e", "n*u*d*e".
_SPELLING_GAP = re.compile(r"[\s.*_-]+")
# Runs of at least this many single-character tokens are read as one spelled-out word. Three,
# because English has two one-letter words ("a", "I") that often sit next to one other
# single character ("a 4k photo"), but three in a row almost never occur in a real prompt.
_MIN_SPELLED = 3
_LEET_COMMON = {"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
# "1" and "!" stand for "i" or "l" ("k1d", "ki11"): one table for each reading.
_LEET = (
    str.maketrans(_LEET_COMMON | {"1": "i", "!": "i"}),
    str.maketrans(_LEET_COMMON | {"1": "l", "!": "l"}),
)
# A letter repeated at least this often stands for the same letter written once or twice.
# Doubled letters inside a word are too common in real words ("as"/"ass", "kid"/"kidd") to
# treat as stretching; only a doubled *last* letter of a longer word is ("sexx", "nakedd").
_MIN_STRETCH = 3
_MIN_TRAILING_DOUBLE = 4
# Stretching in more places than this is tried all-once and all-twice only, to stay cheap.
_MAX_STRETCHED_RUNS = 3
# Blocks whose letters can be drawn as Latin ones: Cyrillic a (U+0430), Greek omicron, Cherokee.
_LOOKALIKE_BLOCKS = (
    (0x0250, 0x02AF), (0x0370, 0x03FF), (0x0400, 0x052F), (0x0530, 0x058F),
    (0x13A0, 0x13FF), (0x1D00, 0x1D7F), (0x2C80, 0x2CFF), (0xA640, 0xA69F),
)  # fmt: skip
_TRIPLE = re.compile(rf"(.)\1{{{_MIN_STRETCH - 1}}}")
_SMALL_CAPITAL = re.compile(r"LATIN LETTER SMALL CAPITAL ([A-Z])")


def _lookalike_table() -> dict[int, str]:
    """Map each letter that Unicode's confusables data calls a homoglyph of a Latin letter or
    digit to that letter, lower-cased (small capitals included)."""
    wanted = set(string.ascii_lowercase + string.digits)
    table: dict[int, str] = {}
    for low, high in _LOOKALIKE_BLOCKS:
        for cp in range(low, high + 1):
            found = confusables.is_confusable(chr(cp), greedy=True, preferred_aliases=["latin"])
            for glyph in found[0]["homoglyphs"] if found else ():
                char = str(glyph["c"])
                small = _SMALL_CAPITAL.fullmatch(str(glyph["n"]))
                if len(char) == 1 and char.lower() in wanted:
                    table[cp] = char.lower()
                elif small:
                    table[cp] = small.group(1).lower()
                if cp in table:
                    break
    return table


_LOOKALIKES = _lookalike_table()


def clean(prompt: str) -> str:
    """NFKC (full-width and compatibility forms become plain letters); drop format characters,
    which are invisible and so only ever there to split a word; casefold; strip accents."""
    if prompt.isascii():  # no compatibility forms, format characters or accents to undo
        return prompt.lower()
    text = unicodedata.normalize("NFKC", prompt)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
    return unicodedata.normalize("NFC", text)


def tokens(prompt: str) -> tuple[tuple[str, bool], ...]:
    """The cleaned prompt's tokens, each with whether it was spelled out letter by letter."""
    text = clean(prompt)
    out: list[tuple[str, bool]] = []
    run: list[str] = []
    end = 0
    for match in _TOKEN_RE.finditer(text):
        token = match.group()
        if run and not (len(token) == 1 and _SPELLING_GAP.fullmatch(text, end, match.start())):
            out.extend(_close_run(run))
            run = []
        if len(token) == 1:
            run.append(token)
        else:
            out.append((token, False))
        end = match.end()
    out.extend(_close_run(run))
    return tuple(out)


def normalise(prompt: str) -> tuple[str, ...]:
    """Return the token sequence that rules are matched against (see the module docstring)."""
    return tuple(token for token, _ in tokens(prompt))


def _close_run(run: list[str]) -> list[tuple[str, bool]]:
    if len(run) >= _MIN_SPELLED:
        return [("".join(run), True)]
    return [(ch, False) for ch in run]


def spellings(token: str) -> frozenset[str]:
    """What a token may stand for: itself; with look-alike letters made Latin; de-leeted (only
    tokens with a letter, so numbers stay numbers); and each of those de-stretched."""
    if _plain(token):
        return frozenset({token})
    bases = {token, token.translate(_LOOKALIKES)}
    if any(ch.isalpha() for ch in token):
        bases |= {base.translate(leet) for base in tuple(bases) for leet in _LEET}
    out: set[str] = set()
    for base in bases:
        out.update(_destretched(base))
    return frozenset(out)


def _plain(token: str) -> bool:
    """Nothing to undo: ASCII letters only, none stretched, no doubled last letter."""
    return (
        token.isascii()
        and token.isalpha()
        and not (len(token) >= _MIN_TRAILING_DOUBLE and token[-1] == token[-2])
        and not _TRIPLE.search(token)
    )


def _destretched(word: str) -> Iterator[str]:
    yield word
    runs = [(ch, len(tuple(group))) for ch, group in groupby(word)]
    stretched = [i for i, (_, n) in enumerate(runs) if n >= _MIN_STRETCH]
    if stretched:
        choices: list[tuple[int, ...]] = (
            list(product((1, 2), repeat=len(stretched)))
            if len(stretched) <= _MAX_STRETCHED_RUNS
            else [(1,) * len(stretched), (2,) * len(stretched)]
        )
        for choice in choices:
            counts = dict(zip(stretched, choice, strict=True))
            yield "".join(ch * counts.get(i, n) for i, (ch, n) in enumerate(runs))
    if len(word) >= _MIN_TRAILING_DOUBLE and word[-1] == word[-2] and word[-1].isalpha():
        yield word[:-1]
