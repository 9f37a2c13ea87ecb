"""Reading a moderation API's answer (pure): what counts as flagged, and what is not an answer."""

from __future__ import annotations

import json

import pytest

from service.moderation.external import ExternalVerdict, flagged_names, verdict_for


def answer(*results: object) -> bytes:
    return json.dumps({"id": "modr-1", "model": "m", "results": list(results)}).encode()


def test_a_category_marked_true_flags_even_if_flagged_says_not() -> None:
    body = answer({"flagged": False, "categories": {"violence": True, "hate": False}})
    assert flagged_names(body) == (True, ("violence",))


def test_every_result_counts() -> None:
    body = answer(
        {"flagged": False, "categories": {}},
        {"flagged": True, "categories": {"sexual": True, "hate": True}},
    )
    assert flagged_names(body) == (True, ("hate", "sexual"))


def test_flagged_without_a_named_category_is_still_a_block() -> None:
    flagged, names = flagged_names(answer({"flagged": True})) or (False, ())
    assert verdict_for(flagged, names) == ExternalVerdict(
        allowed=False, flagged="flagged", category="abuse"
    )


def test_a_clean_answer_allows() -> None:
    body = answer({"flagged": False, "categories": {"sexual": False}, "category_scores": {}})
    assert flagged_names(body) == (False, ())
    assert verdict_for(False, ()) == ExternalVerdict(allowed=True)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"results": []}',
        b'{"results": {}}',
        b'{"error": {"message": "quota"}}',
        answer({"flagged": "yes", "categories": {}}),
        answer({"categories": {"sexual": True}}),
        answer({"flagged": False, "categories": ["sexual"]}),
        answer("flagged"),
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_what_is_not_a_moderation_answer(body: bytes) -> None:
    assert flagged_names(body) is None
