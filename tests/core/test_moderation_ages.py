"""Ages under 18 and school grades, however written, are one marker (``@minor_age``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.core.moderation import Rule, Ruleset, normalise, screen
from service.core.moderation.ages import minor_ages
from tests.core.test_moderation import REAL

AGE_ONLY = Ruleset((Rule(id="age", category="sexual_minors", any_of=("@minor_age",)),))
WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
)  # fmt: skip


def spans(prompt: str) -> tuple[tuple[int, int], ...]:
    return minor_ages(normalise(prompt))


@pytest.mark.parametrize(
    "prompt",
    [
        "a 12 year old",
        "12-year-old",
        "12 years old",
        "a twelve year old",
        "fifteen-year-olds",
        "13yo",
        "13 yo",
        "13yr",
        "9yrs old",
        "11 y/o",
        "11 y.o.",
        "9 y.o.",
        "6 months old",
        "a year old",
        "aged 9",
        "aged nine",
        "age 12",
        "age: 12",
        "ages 8 to 10",
        "at the age of 10",
        "14 years of age",
        "under 18",
        "under eighteen",
        "grade 5",
        "grade five",
        "5th grade",
        "fifth grade",
        "a fifth-grader",
        "first graders",
        "her 12th birthday",
        "sixteenth birthday",
        "\uff21\uff47\uff45\uff44 \uff4e\uff49\uff4e\uff45",  # full-width
    ],
)
def test_minor_ages_are_found(prompt: str) -> None:
    assert spans(prompt), prompt


@pytest.mark.parametrize(
    "prompt",
    [
        "a 25 year old",
        "18 years old",
        "eighteen-year-old",
        "aged 30",
        "age 18",
        "under 21",
        "12 years in prison",
        "a 12 pack of beer",
        "grade a beef",
        "grade 13",
        "20th birthday",
        "top 10 list",
        "1080p, 4k, 16:9",
        "a 100 year old oak",
        "the age of empires",
    ],
)
def test_other_numbers_are_not_ages(prompt: str) -> None:
    assert spans(prompt) == (), prompt


def test_a_span_covers_the_whole_expression() -> None:
    assert spans("photo of a 12 year old girl") == ((3, 6),)
    assert spans("girl aged nine") == ((1, 3),)


@given(
    age=st.integers(0, 17),
    words=st.booleans(),
    form=st.sampled_from(["{n} year old", "{n}-year-old", "aged {n}", "age {n}", "{n} yrs old"]),
)
def test_any_minor_age_with_a_sexual_marker_is_sexual_minors(
    age: int, words: bool, form: str
) -> None:
    n = WORDS[age] if words else str(age)
    stated = form.format(n=n)
    assert screen(stated, AGE_ONLY).rule_id == "age"
    assert screen(f"nude photo, {stated}", REAL).category == "sexual_minors"
    assert screen(f"a birthday cake for a {stated}", REAL).allowed


@given(age=st.integers(18, 99))
def test_adult_ages_are_not_minor_markers(age: int) -> None:
    assert screen(f"a {age} year old", AGE_ONLY).allowed
    assert screen(f"nude photo of a {age} year old woman", REAL).category == "sexual"


def test_digits_from_other_scripts() -> None:
    # Ethiopic "፩" is a digit to str.isdigit() but not a decimal int() can read; Arabic-Indic
    # "١٢" is a decimal, and twelve.
    assert minor_ages(["፩", "year", "old"]) == ()
    assert minor_ages(["١٢", "year", "old"]) == ((0, 3),)
