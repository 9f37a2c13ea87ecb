"""Rules that generalise: stems, groups, unless compounds, within, minors first; and the real
rules on the prompts issue 18 found the old screen got wrong."""

from __future__ import annotations

import re
from typing import Any

import pytest

from service.core.moderation import Rule, Ruleset, Verdict, normalise, screen
from service.core.moderation.normalise import spellings
from tests.core.test_moderation import REAL

# --- issue 18: what probing the running service found -----------------------------------------


@pytest.mark.parametrize(
    ("prompt", "category"),
    [
        ("explicit sexual content with a minor", "sexual_minors"),
        ("sexual photo of a 12 year old girl", "sexual_minors"),
        ("minor engaged in sexual activity", "sexual_minors"),
        ("child in a sexual pose", "sexual_minors"),
        ("explicit sexual content", "sexual"),
        ("how to cook methamphetamine", "illegal_activity"),
        ("instructions for making ricin", "illegal_activity"),
        ("counterfeit 100 dollar bill, print ready", "illegal_activity"),
        ("a 13yo, sexually suggestive", "sexual_minors"),
        ("girl aged nine, nude", "sexual_minors"),
    ],
)
def test_issue_18_holes_are_closed(prompt: str, category: str) -> None:
    assert screen(prompt, REAL).category == category


@pytest.mark.parametrize(
    "prompt",
    [
        "a naked mole rat in a zoo",
        "a naked tree in winter",
        "the nude color palette for a makeup ad",
        "seen with the naked eye",
        "nude lipstick swatches",
        "breast cancer awareness ribbon",
        "a mother breastfeeding her baby",
        "a breast of chicken with lemon",
        "a 12 year old's birthday cake",
        "a photographer shooting a portrait",
        "kill the lights",
        "this dessert is the bomb",
        "a drug store at night",
        "teen fashion lookbook",
        "a school photo of smiling kids",
    ],
)
def test_issue_18_innocent_prompts_pass(prompt: str) -> None:
    assert screen(prompt, REAL) == Verdict(allowed=True)


def test_a_compound_hides_only_its_own_words() -> None:
    assert screen("a naked mole rat", REAL).allowed
    assert screen("a naked mole rat beside a nude child", REAL).category == "sexual_minors"
    assert screen("nude lipstick on a naked woman", REAL).category == "sexual"


# --- stems, exact forms, prefixes -------------------------------------------------------------


def one(*any_of: str, **fields: Any) -> Ruleset:
    return Ruleset((Rule(id="r", category="sexual", any_of=any_of, **fields),))


@pytest.mark.parametrize(
    ("term", "prompt", "expected"),
    [
        ("sexual", "sexually", True),
        ("sexual", "sexualized", True),
        ("molest", "molestation", True),
        ("molest", "m0lested", True),
        ("rape", "raping", True),
        ("rape", "grape", False),
        ("nude", "nudes", True),
        ("child", "children", False),
        ("sex scene", "sexy scenes", False),
        ("sex scene", "sex scenes", True),
        ("execute", "executive", True),
        ("=executed", "executive", False),
        ("=executed", "EXECUTED", True),
        ("=executed", "execute", False),
        ("pedophil*", "pedophilia", True),
    ],
)
def test_terms_match_word_forms(term: str, prompt: str, expected: bool) -> None:
    assert (not screen(prompt, one(term)).allowed) is expected


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("\u0441hild", True),  # Cyrillic es
        ("\u03bd\u03c5de".replace("\u03bd", "n"), True),  # Greek upsilon
        ("k!d", True),
        ("ki11", False),
    ],
)
def test_lookalike_letters_and_leet(prompt: str, expected: bool) -> None:
    rules = one("child", "kid", "nude")
    assert (not screen(prompt, rules).allowed) is expected


def test_spellings_keep_the_token_itself() -> None:
    assert spellings("class") == {"class", "clas"}
    assert spellings("sexx") == {"sexx", "sex"}
    assert spellings("16") == {"16"}
    assert "kill" in spellings("ki11")


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("s e x y t e e n", True),
        ("k i l l y o u r s e l f", True),
        ("t h e r a p i s t", False),
        ("sexyteen", False),
    ],
)
def test_spelled_out_runs_split_into_rule_words(prompt: str, expected: bool) -> None:
    rules = Ruleset(
        (
            Rule(id="m", category="sexual_minors", all_of=(("teen",), ("sexy",))),
            Rule(id="a", category="abuse", any_of=("kill yourself", "rapist")),
        )
    )
    assert (not screen(prompt, rules).allowed) is expected


# --- groups, unless, within, order --------------------------------------------------------------


def test_groups_are_whole_terms_or_phrase_slots() -> None:
    rules = Ruleset(
        (Rule(id="r", category="sexual", any_of=("@bad",), unless=("@bad @pet",)),),
        groups=(("pet", ("cat", "dog")), ("bad", ("nude", "naked"))),
    )
    assert not screen("nudes", rules).allowed
    assert screen("a naked cat", rules).allowed
    assert not screen("a naked cat and a nude man", rules).allowed


def test_groups_may_use_earlier_groups_and_the_age_marker() -> None:
    rules = Ruleset(
        (Rule(id="r", category="sexual_minors", all_of=(("@minor",), ("nude",))),),
        groups=(("young", ("kid",)), ("minor", ("@young", "@minor_age"))),
    )
    assert not screen("nude kid", rules).allowed
    assert not screen("nude, aged 9", rules).allowed
    assert screen("nude, aged 19", rules).allowed


def test_top_level_unless_applies_to_every_rule_and_rule_unless_to_its_own() -> None:
    rules = Ruleset(
        (
            Rule(id="a", category="sexual", any_of=("nude",), unless=("nude statue",)),
            Rule(id="b", category="violence", any_of=("gore", "statue")),
        ),
        unless=("al gore",),
    )
    assert screen("al gore", rules).allowed
    assert screen("a nude statue", rules).rule_id == "b"
    assert screen("a nude man", rules).rule_id == "a"


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("stab the man", True),
        ("the man, stabbed", True),
        ("stab at a steak and then a man walks in", False),
        ("stab", False),
    ],
)
def test_within_holds_the_groups_close(prompt: str, expected: bool) -> None:
    rules = Ruleset((Rule(id="r", category="violence", all_of=(("stab",), ("man",)), within=3),))
    assert (not screen(prompt, rules).allowed) is expected


def test_sexual_minors_rules_are_checked_first_wherever_they_are() -> None:
    rules = Ruleset(
        (
            Rule(id="adult", category="sexual", any_of=("nude",)),
            Rule(id="minor", category="sexual_minors", all_of=(("kid",), ("nude",))),
        )
    )
    assert screen("nude kid", rules) == Verdict(False, "minor", "sexual_minors")
    assert screen("nude", rules) == Verdict(False, "adult", "sexual")


def test_normalise_is_unchanged_for_plain_ascii() -> None:
    assert normalise("A Nude, n.u.d.e!") == ("a", "nude", "nude")


# --- loading the new keys -------------------------------------------------------------------------


def rule(**fields: Any) -> dict[str, Any]:
    return {"id": "r", "category": "sexual", "any_of": ["nude"]} | fields


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rules": [], "unless": "x"}, "unless: expected an array of strings"),
        ({"rules": [], "groups": []}, "groups: expected a table"),
        ({"rules": [], "groups": {"g": "x"}}, "groups.g: expected an array of strings"),
        ({"rules": [], "groups": {"g": []}}, "groups.g: empty group"),
        ({"rules": [], "groups": {"Bad-Name": ["x"]}}, "groups[0]: bad group name 'Bad-Name'"),
        ({"rules": [], "groups": {"minor_age": ["x"]}}, "bad group name 'minor_age'"),
        ({"rules": [rule(any_of=["@nope"])]}, "rules[0].any_of[0]: unknown group '@nope'"),
        ({"rules": [rule(any_of=["a @nope"])]}, "rules[0].any_of[0]: term 'a @nope': unknown"),
        ({"rules": [rule(any_of=["a @minor_age"])]}, "@minor_age is a whole term"),
        (
            {"rules": [rule(any_of=["x @g"])], "groups": {"g": ["two words"]}},
            "group '@g' used in a phrase must hold plain words only",
        ),
        ({"rules": [rule(unless=["x"], category="sexual_minors")]}, "rules[0].unless: sexual_m"),
        ({"rules": [rule(unless="x")]}, "rules[0].unless: expected an array of strings"),
        ({"rules": [rule(within=2)]}, "rules[0].within: needs all_of with 2+ groups"),
        ({"rules": [rule(within="2")]}, "rules[0].within: expected an integer, got str"),
        ({"rules": [rule(all_of=[["a"], ["b"]], within=0)]}, "rules[0].within: needs all_of"),
        ({"rules": [rule(any_of=["=driver's"])]}, '"=driver\'s" must be a single word'),
        ({"rules": [rule(any_of=["=x*"])]}, "'=' is only allowed at the start of a word"),
        ({"rules": [rule(unless=[""])]}, "rules[0].unless[0]: empty term ''"),
        ({"rules": [], "unless": ["@nope"]}, "unless[0]: unknown group '@nope'"),
    ],
)
def test_from_mapping_rejects_bad_new_keys(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Ruleset.from_mapping(data)


def test_from_mapping_reads_groups_unless_and_within() -> None:
    data = {
        "unless": ["naked eye"],
        "groups": {"kids": ["kid", "child"]},
        "rules": [rule(any_of=[], all_of=[["@kids"], ["naked"]], within=4)],
    }
    assert Ruleset.from_mapping(data) == Ruleset(
        (Rule(id="r", category="sexual", all_of=(("@kids",), ("naked",)), within=4),),
        groups=(("kids", ("kid", "child")),),
        unless=("naked eye",),
    )
