"""Tests for prompt screening, against the real rules file and against small inline rulesets."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.core.moderation import (
    CATEGORIES,
    Rule,
    Ruleset,
    Verdict,
    normalise,
    screen,
)

CONFIG = Path(__file__).parents[2] / "config" / "moderation.toml"
REAL = Ruleset.from_mapping(tomllib.loads(CONFIG.read_text(encoding="utf-8")))
ZERO_WIDTH = ("\u200b", "\u200c", "\u200d", "\u2060", "\u00ad", "\ufeff")
SEVERITY = ("sexual_minors", "sexual", "violence", "illegal_activity", "abuse")


def ruleset(*any_of: str) -> Ruleset:
    return Ruleset((Rule(id="r", category="sexual", any_of=any_of),))


def blocked(prompt: str, rules: Ruleset) -> bool:
    return not screen(prompt, rules).allowed


# --- the real rules file ----------------------------------------------------------------------


def test_real_config_covers_every_category_most_severe_first() -> None:
    categories = [rule.category for rule in REAL.rules]
    assert set(categories) == CATEGORIES
    assert categories == sorted(categories, key=SEVERITY.index)


BLOCKED = [
    ("naked child on a beach", "minors-sexual-context"),
    ("sexy teen in lingerie", "minors-sexual-context"),
    ("a schoolgirl, topless", "minors-sexual-context"),
    ("lolicon artwork", "minors-explicit-terms"),
    ("nude woman on a bed", "sexual-explicit"),
    ("hentai girl, detailed", "sexual-explicit"),
    ("an explicit sex scene", "sexual-explicit"),
    ("woman masturbating", "sexual-explicit"),
    ("a rapist in an alley", "violence-sexual"),
    ("a beheading in the town square", "violence-gore"),
    ("dismembered bodies, gore", "violence-gore"),
    ("mass shooting at a mall", "violence-mass-harm"),
    ("how to build a bomb, diagram", "illegal-weapons"),
    ("a 3D-printed gun on a table", "illegal-weapons"),
    ("a meth lab in a trailer", "illegal-drugs"),
    ("counterfeit money printing press", "illegal-fraud"),
    ("fake driver's license template", "illegal-fraud"),
    ("human trafficking ring", "illegal-trafficking"),
    ("self-harm instructions", "abuse-self-harm"),
    ("kill yourself poster", "abuse-harassment"),
    ("kys", "abuse-harassment"),
    ("white power rally banner", "abuse-hate"),
    ("nazi propaganda poster", "abuse-hate"),
]


@pytest.mark.parametrize(("prompt", "rule_id"), BLOCKED)
def test_real_config_blocks(prompt: str, rule_id: str) -> None:
    verdict = screen(prompt, REAL)
    rule = next(rule for rule in REAL.rules if rule.id == rule_id)
    assert verdict == Verdict(allowed=False, rule_id=rule_id, category=rule.category)


BENIGN = [
    "assassin on a rooftop at night",
    "an art class painting a still life",
    "tall grass swaying in the wind",
    "Scunthorpe town centre in the rain",
    "a cocktail on a bar counter, bokeh",
    "a therapist's office with plants",
    "data analysis dashboard illustration",
    "a skill tree for a fantasy video game",
    "shooting star over a mountain lake",
    "kids playing in a park",
    "a child's birthday party",
    "a teenage superhero in a comic style",
    "a 4k photo of a red fox at sunrise, 16:9",
    "product shot of a perfume bottle on marble",
    "a boxer training for a fight",
    "grapes and drapes in a baroque still life",
    "a bass guitar on a stage",
    "rolling hills of the Sussex and Essex countryside",
    "a tax analyst studying spreadsheets",
    "summa cum laude diploma on a desk",
    "a mother holding her newborn baby, soft light",
    "same-sex couple at their wedding with their kids",
    "ABC blocks for toddlers, a b c",
    "a 3 d render of a robot, 8k, ultra detailed",
    "minor key sheet music on a piano",
    "portrait of a young woman, film grain, 35mm, f/1.8",
    "a mind flayer from a fantasy game",
    "as above, so below",
]


@pytest.mark.parametrize("prompt", BENIGN)
def test_real_config_allows(prompt: str) -> None:
    assert screen(prompt, REAL) == Verdict(allowed=True)


OBFUSCATED = [
    pytest.param("NUDE woman", id="upper-case"),
    pytest.param("\uff4e\uff55\uff44\uff45 woman", id="full-width"),
    pytest.param("núde woman", id="accent"),
    pytest.param("nu\u200bde woman", id="zero-width-space"),
    pytest.param("n\u200cude woman", id="zero-width-non-joiner"),
    pytest.param("nud\u200de woman", id="zero-width-joiner"),
    pytest.param("nu\u2060de woman", id="word-joiner"),
    pytest.param("nu\u00adde woman", id="soft-hyphen"),
    pytest.param("n u d e woman", id="spaced"),
    pytest.param("n.u.d.e woman", id="dotted"),
    pytest.param("n-u-d-e woman", id="dashed"),
    pytest.param("n_u_d_e woman", id="underscored"),
    pytest.param("n*u*d*e woman", id="asterisked"),
    pytest.param("n . u . d . e woman", id="dotted-and-spaced"),
    pytest.param("nud3 woman", id="leet-3"),
    pytest.param("p0rn", id="leet-0"),
    pytest.param("n@ked woman", id="leet-at"),
    pytest.param("$3x scene", id="leet-dollar"),
    pytest.param("nuuuude woman", id="stretched-u"),
    pytest.param("pooorn", id="stretched-o"),
    pytest.param("P-0-R-N", id="dashed-leet-upper"),
    pytest.param("\uff2e\u200b.\u00da.D.3", id="everything"),
]


@pytest.mark.parametrize("prompt", OBFUSCATED)
def test_obfuscation_is_seen_through(prompt: str) -> None:
    assert screen(prompt, REAL).rule_id == "sexual-explicit"


# --- normalise --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "tokens"),
    [
        ("", ()),
        ("A cat", ("a", "cat")),
        ("a b", ("a", "b")),
        ("n u d e", ("nude",)),
        ("a, b, c", ("a", "b", "c")),
        ("16:9", ("16", "9")),
        ("4k photo", ("4k", "photo")),
        ("\uff4e\uff55\uff44\uff45", ("nude",)),
        ("Café Straße", ("cafe", "strasse")),
        ("n\u200bu\u00adde", ("nude",)),
        ("child's", ("child", "s")),
        ("n@ked $5", ("n@ked", "$5")),
        ("nuuuude", ("nuuuude",)),
    ],
)
def test_normalise(prompt: str, tokens: tuple[str, ...]) -> None:
    assert normalise(prompt) == tokens


# --- matching semantics, on inline rules --------------------------------------------------------


@pytest.mark.parametrize(
    ("terms", "prompt", "expected"),
    [
        (("ass",), "ass", True),
        (("ass",), "as", False),
        (("ass",), "asssss", True),
        (("ass",), "a55", True),
        (("ass",), "assassin", False),
        (("ass",), "class", False),
        (("ass",), "grass", False),
        (("nude",), "nuuude", True),
        (("nude",), "nudde", False),
        (("sex scene",), "sex scene", True),
        (("sex scene",), "sex, scene", True),
        (("sex scene",), "s e x scene", True),
        (("sex scene",), "scene sex", False),
        (("sex scene",), "sexscene", False),
        (("make a bomb",), "m4ke a b0mb", True),
        (("4chan",), "4chan", True),
        (("h4x",), "h4x", True),
        (("hax",), "h4x", True),
        (("so",), "50", False),
        (("nud*",), "nud", True),
        (("nud*",), "nudist", True),
        (("nud*",), "NUUUDES", True),
        (("nud*",), "nu", False),
        (("nud*",), "snude", False),
        (("self harm*",), "self harming", True),
        (("self harm*",), "harming self", False),
        (("Self-Harm",), "self harm", True),
    ],
)
def test_term_matching(terms: tuple[str, ...], prompt: str, expected: bool) -> None:
    assert blocked(prompt, ruleset(*terms)) is expected


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [("kid", False), ("nude", False), ("nude kid", True), ("a kid, later nude", True)],
)
def test_all_of_needs_every_group(prompt: str, expected: bool) -> None:
    rules = Ruleset((Rule(id="r", category="sexual_minors", all_of=(("kid",), ("nude",))),))
    assert blocked(prompt, rules) is expected


def test_first_matching_rule_wins() -> None:
    rules = Ruleset(
        (
            Rule(id="first", category="violence", any_of=("gore",)),
            Rule(id="second", category="sexual", any_of=("nude", "gore")),
        )
    )
    assert screen("gore and nude", rules) == Verdict(False, "first", "violence")
    assert screen("nude", rules) == Verdict(False, "second", "sexual")
    assert screen("a cat", rules) == Verdict(True)


# --- loading rules ------------------------------------------------------------------------------


def rule(**fields: Any) -> dict[str, Any]:
    return {"id": "r", "category": "sexual", "any_of": ["nude"]} | fields


def without(key: str) -> dict[str, Any]:
    data = rule()
    del data[key]
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "rules: missing"),
        ({"rules": {}}, "rules: expected an array of tables"),
        ({"rules": [], "extra": 1}, "unknown top-level key 'extra'"),
        ({"rules": ["nude"]}, "rules[0]: expected a table, got str"),
        ({"rules": [without("id")]}, "rules[0].id: missing"),
        ({"rules": [without("category")]}, "rules[0].category: missing"),
        ({"rules": [rule(id=5)]}, "rules[0].id: expected a string, got int"),
        ({"rules": [rule(id="")]}, "rules[0].id: must be a non-empty string"),
        ({"rules": [rule(), rule(category="foo")]}, "rules[1].category: unknown category 'foo'"),
        ({"rules": [rule(), rule()]}, "rules[1].id: duplicate id 'r'"),
        ({"rules": [without("any_of")]}, "rules[0]: rule 'r' needs any_of or all_of"),
        ({"rules": [rule(any_of=[])]}, "rules[0]: rule 'r' needs any_of or all_of"),
        ({"rules": [rule(anyof=["x"])]}, "rules[0]: unknown key 'anyof'"),
        ({"rules": [rule(any_of="nude")]}, "rules[0].any_of: expected an array of strings"),
        ({"rules": [rule(any_of=["x", 1])]}, "rules[0].any_of[1]: expected a string, got int"),
        ({"rules": [rule(any_of=[""])]}, "rules[0].any_of[0]: empty term ''"),
        ({"rules": [rule(any_of=["x", " - "])]}, "rules[0].any_of[1]: empty term ' - '"),
        ({"rules": [rule(any_of=["*"])]}, "rules[0].any_of[0]: empty term '*'"),
        ({"rules": [rule(any_of=["n*de"])]}, "rules[0].any_of[0]: term 'n*de': '*' is only"),
        ({"rules": [rule(any_of=["nu*"])]}, "rules[0].any_of[0]: term 'nu*': '*' must follow"),
        ({"rules": [rule(any_of=["nud *"])]}, "rules[0].any_of[0]: term 'nud *': '*' must"),
        ({"rules": [rule(all_of="x")]}, "rules[0].all_of: expected an array of arrays"),
        ({"rules": [rule(all_of=["x"])]}, "rules[0].all_of[0]: expected an array of strings"),
        ({"rules": [rule(all_of=[[]])]}, "rules[0].all_of[0]: empty group"),
        ({"rules": [rule(all_of=[["a"], ["b", 2]])]}, "rules[0].all_of[1][1]: expected a string"),
        ({"rules": [rule(all_of=[["a", ""]])]}, "rules[0].all_of[0][1]: empty term"),
    ],
)
def test_from_mapping_rejects(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Ruleset.from_mapping(data)


def test_from_mapping_builds_rules_in_order() -> None:
    data = {"rules": [rule(id="a"), rule(id="b", any_of=[], all_of=[["kid"], ["nude"]])]}
    assert Ruleset.from_mapping(data) == Ruleset(
        (
            Rule(id="a", category="sexual", any_of=("nude",)),
            Rule(id="b", category="sexual", all_of=(("kid",), ("nude",))),
        )
    )


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ValueError, match="category: unknown category 'foo'"):
        Rule(id="r", category="foo", any_of=("x",))
    with pytest.raises(ValueError, match=re.escape("rules[1].id: duplicate id 'r'")):
        Ruleset((Rule(id="r", category="sexual", any_of=("x",)),) * 2)


# --- properties ---------------------------------------------------------------------------------

TRICKY = st.sampled_from([*"nude porn a ._-*@$01345", *ZERO_WIDTH, "\uff4e", "\u00fa", "\u0301"])


@given(st.text() | st.text(TRICKY))
def test_screen_never_raises(prompt: str) -> None:
    assert isinstance(screen(prompt, REAL), Verdict)
    for token in normalise(prompt):
        assert token
        assert not any(ch.isspace() or ch in ZERO_WIDTH for ch in token)


@st.composite
def disguised(draw: st.DrawFn) -> tuple[str, str]:
    """A blocked prompt, and the same prompt with random case and zero-width characters."""
    prompt = draw(st.sampled_from([prompt for prompt, _ in BLOCKED]))
    chars = []
    for ch in prompt:
        chars.append(ch.upper() if draw(st.booleans()) else ch)
        chars.extend(draw(st.lists(st.sampled_from(ZERO_WIDTH), max_size=2)))
    return prompt, "".join(chars)


@given(disguised())
def test_case_and_zero_width_do_not_evade(pair: tuple[str, str]) -> None:
    prompt, variant = pair
    assert screen(variant, REAL) == screen(prompt, REAL)
    assert not screen(variant, REAL).allowed
