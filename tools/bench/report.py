"""The table printed at the end, and ``.bench/results.json``.

The table shows each figure's median with the min-max over the runs and its target; the JSON
keeps every run's value, the checks and the notes, plus what machine and settings produced
them, so two results files can be compared later without re-running anything.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tools.bench.results import Metric, Outcome

POSTGRES = "PostgreSQL"


def number(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cells(m: Metric) -> list[str]:
    spread = f"{number(m.low)}-{number(m.high)}" if m.values else ""
    return [f"{number(m.median)} {m.unit}".strip(), spread]


def _verdict(m: Metric) -> str:
    target = "" if m.target is None else f"{m.target[0]} {number(m.target[1])}"
    verdict = {None: "", True: "pass", False: "FAIL"}[m.passed]
    return f"{target} {verdict}".strip()


def _rows(metrics: Sequence[Metric]) -> tuple[list[str], list[list[str]]]:
    """One row per figure. With PostgreSQL figures in the run, each sits beside its SQLite
    twin (same scenario and name), with the ratio of the medians, PostgreSQL / SQLite; a
    PostgreSQL figure without a twin gets a row of its own, its SQLite cells empty."""
    pg = {(m.scenario, m.name): m for m in metrics if m.backend == POSTGRES}
    if not pg:
        header = ["scenario", "metric", "median", "min-max", "target", "result"]
        rows = []
        for m in metrics:
            target = "" if m.target is None else f"{m.target[0]} {number(m.target[1])}"
            verdict = {None: "", True: "pass", False: "FAIL"}[m.passed]
            rows.append([m.scenario, m.name, *_cells(m), target, verdict])
        return header, rows
    header = ["scenario", "metric", "SQLite median", "min-max", "target/result",
              "PostgreSQL median", "min-max", "target/result", "PG/SQLite"]  # fmt: skip
    twins = {key for key in pg if any((m.scenario, m.name) == key for m in metrics
                                      if m.backend != POSTGRES)}  # fmt: skip
    rows = []
    for m in metrics:
        key = (m.scenario, m.name)
        if m.backend == POSTGRES:
            if key not in twins:
                rows.append([m.scenario, m.name, "", "", "", *_cells(m), _verdict(m), ""])
            continue
        twin = pg.get(key)
        if twin is None:
            rows.append([m.scenario, m.name, *_cells(m), _verdict(m), "", "", "", ""])
            continue
        ratio = twin.median / m.median if m.median else math.nan
        rows.append([m.scenario, m.name, *_cells(m), _verdict(m), *_cells(twin),
                     _verdict(twin), f"{number(ratio)}x"])  # fmt: skip
    return header, rows


def table(outcome: Outcome) -> str:
    header, body = _rows(outcome.metrics)
    rows = [header, *body]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    failed = [c for c in outcome.checks if not c.ok]
    lines.append("")
    lines.append(
        f"checks: {len(outcome.checks) - len(failed)}/{len(outcome.checks)} passed"
        + "".join(f"\n  FAILED [{c.scenario}] {c.what}: {c.detail}" for c in failed)
    )
    if outcome.notes:
        lines.append("notes:")
        lines.extend(f"  - {note}" for note in outcome.notes)
    return "\n".join(line.rstrip() for line in lines)


def missed(outcome: Outcome) -> list[str]:
    """What makes ``--strict`` fail: targets missed and checks failed."""
    return [f"{m.scenario}: {m.name}" for m in outcome.metrics if m.passed is False] + [
        f"{c.scenario}: {c.what}" for c in outcome.checks if not c.ok
    ]


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(  # noqa: S603 (git, with arguments written here)
            ["git", *args],  # noqa: S607
            cwd=root, capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
    except OSError:
        return ""
    return done.stdout


def source_state(root: Path) -> dict[str, object]:
    """The commit, and the service files changed in the working tree: the processes run the
    tree as it is, so uncommitted changes are part of what was measured. Taken at the start."""
    changed = _git(root, "status", "--porcelain", "--", "service", "config")
    return {
        "commit": _git(root, "rev-parse", "HEAD").strip(),
        "uncommitted": [line[3:] for line in changed.splitlines()],
    }


def write_json(
    path: Path,
    outcome: Outcome,
    *,
    source: dict[str, object],
    argv: Sequence[str],
    seconds: float,
) -> None:
    document = {
        "argv": list(argv),
        "source": source,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "seconds": round(seconds, 1),
        "metrics": [m.as_dict() for m in outcome.metrics],
        "checks": [c.as_dict() for c in outcome.checks],
        "notes": outcome.notes,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
