"""``scripts/moderation-eval [--rules PATH] [--misses] [--strict] [SET ...]``.

Screens every prompt of each labelled set (default: dev and check; a SET is a name or a path)
with the rules file and prints recall per category, overall recall and the false-positive rate.
``--misses`` lists the prompts screened the wrong way. Exits 0 whatever the figures are, unless
``--strict``: then a set below a floor (sexual_minors recall 0.98, overall 0.95, false positives
at most 2 %) is exit 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from service.core.moderation import CATEGORIES
from tools.moderation_eval import ALLOWED, RULES, SETS, Report, evaluate, load_cases, load_rules


def render(report: Report, misses: bool) -> str:
    lines = [f"{report.name}: {sum(report.totals.values())} prompts"]
    for label in sorted(CATEGORIES):
        lines.append(
            f"  recall {label:<17} {report.recall(label):6.3f}"
            f"  ({report.caught[label]}/{report.totals[label]})"
        )
    total = sum(report.totals[c] for c in CATEGORIES)
    caught = sum(report.caught[c] for c in CATEGORIES)
    lines.append(f"  recall {'overall':<17} {report.overall_recall:6.3f}  ({caught}/{total})")
    lines.append(
        f"  false positives          {report.false_positive_rate:6.3f}"
        f"  ({report.false_positives}/{report.totals[ALLOWED]} allowed prompts refused)"
    )
    lines.extend(f"  BELOW FLOOR: {failure}" for failure in report.failures())
    if misses:
        for miss in report.misses:
            how = f"refused by {miss.rule_id}" if miss.rule_id else "allowed"
            lines.append(f"  miss [{miss.case.label}] {how}: {miss.case.prompt!r}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="moderation-eval", description=__doc__)
    parser.add_argument("sets", nargs="*", default=list(SETS), metavar="SET")
    parser.add_argument("--rules", type=Path, default=RULES)
    parser.add_argument("--misses", action="store_true", help="list wrongly screened prompts")
    parser.add_argument("--strict", action="store_true", help="exit 1 below a floor")
    args = parser.parse_args(argv)
    rules = load_rules(args.rules)
    failed = False
    for name in args.sets:
        path = SETS.get(name, Path(name))
        report = evaluate(name if name in SETS else path.stem, load_cases(path), rules)
        print(render(report, args.misses))
        failed = failed or bool(report.failures())
    return 1 if failed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
