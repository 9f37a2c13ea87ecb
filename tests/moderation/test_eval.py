"""The goals of issue 18, held on the labelled sets: sexual_minors recall at least 0.98, overall
recall at least 0.95, at most 2 % of allowed prompts refused — on the dev set the rules were tuned
on and on the check set they were not. Also the eval tool itself, on small sets made here."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.core.moderation import CATEGORIES
from tools.moderation_eval import (
    ALLOWED,
    FLOORS,
    MAX_FALSE_POSITIVES,
    SETS,
    evaluate,
    load_cases,
    load_rules,
)
from tools.moderation_eval.__main__ import main

RULES = load_rules()
MIN_PROMPTS = 300


@pytest.mark.parametrize("name", list(SETS))
def test_the_rules_meet_the_floors(name: str) -> None:
    report = evaluate(name, load_cases(SETS[name]), RULES)
    misses = [f"[{m.case.label}] {m.case.prompt!r} ({m.rule_id})" for m in report.misses]
    assert report.recall("sexual_minors") >= FLOORS["sexual_minors"], misses
    assert report.overall_recall >= FLOORS["overall"], misses
    assert report.false_positive_rate <= MAX_FALSE_POSITIVES, misses


def test_the_sets_are_big_and_cover_every_label() -> None:
    cases = [case for path in SETS.values() for case in load_cases(path)]
    assert len(cases) >= MIN_PROMPTS
    assert {case.label for case in cases} == {*CATEGORIES, ALLOWED}
    prompts = [case.prompt for case in cases]
    assert len(set(prompts)) == len(prompts), "a prompt appears twice"


def write(tmp_path: Path, text: str, name: str = "set.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_evaluate_counts_recall_and_false_positives(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[sexual]\nprompts = ["a nude woman", "a lovely cat"]\n'
        '[allowed]\nprompts = ["a cat", "a naked man", "a dog", "a bird"]\n',
    )
    report = evaluate("t", load_cases(path), RULES)
    assert report.recall("sexual") == 0.5
    assert report.recall("violence") == 1.0  # no prompts: nothing missed
    assert report.false_positives == 1
    assert report.false_positive_rate == 0.25
    assert [m.case.prompt for m in report.misses] == ["a lovely cat", "a naked man"]
    assert report.failures() == ["overall recall 0.500 < 0.95", "false positives 0.250 > 0.02"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[nsfw]\nprompts = ["x"]\n', "unknown label 'nsfw'"),
        ('[sexual]\nprompt = ["x"]\n', "[sexual] must hold exactly one key, 'prompts'"),
        ("[sexual]\nprompts = [1]\n", "[sexual].prompts must be an array of strings"),
    ],
)
def test_load_cases_is_strict(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_cases(write(tmp_path, text))


def test_the_command_prints_figures_and_fails_strictly_below_a_floor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = write(
        tmp_path, '[[rules]]\nid = "r"\ncategory = "sexual"\nany_of = ["nude"]\n', "rules.toml"
    )
    cases = write(tmp_path, '[sexual_minors]\nprompts = ["a naked child"]\n', "mine.toml")
    assert main(["--rules", str(rules), str(cases)]) == 0
    assert main(["--rules", str(rules), "--strict", "--misses", str(cases)]) == 1
    out = capsys.readouterr().out
    assert "mine: 1 prompts" in out
    assert "recall sexual_minors      0.000  (0/1)" in out
    assert "BELOW FLOOR: sexual_minors recall 0.000 < 0.98" in out
    assert "miss [sexual_minors] allowed: 'a naked child'" in out


def test_the_command_passes_strictly_on_the_real_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--strict", "dev"]) == 0
    assert "dev:" in capsys.readouterr().out
