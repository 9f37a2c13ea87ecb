"""What a soak prints: the figures of the run, then each check with its own figures and, when it
fails, the first problems it found (with the ids to look them up by).

A check is a name, some figures and a list of problems; it passes when the list is empty. The
exit status is non-zero when any check fails, so CI can use the soak as a test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

Figure = int | float | str
SHOWN_PROBLEMS = 12


@dataclass
class Check:
    name: str
    figures: dict[str, Figure] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def expect(self, condition: bool, problem: str) -> None:
        if not condition:
            self.problems.append(problem)


@dataclass
class Report:
    sections: dict[str, dict[str, Figure]] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    #: kept in report.json only (too long to print): e.g. when each fault was injected
    details: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def render(self) -> str:
        lines: list[str] = []
        for title, figures in self.sections.items():
            lines.append(f"== {title}")
            lines.extend(f"   {name}: {value}" for name, value in figures.items())
        lines.append("== checks")
        for check in self.checks:
            lines.append(f" {'PASS' if check.ok else 'FAIL'}  {check.name}")
            lines.extend(f"         {name}: {value}" for name, value in check.figures.items())
            for problem in check.problems[:SHOWN_PROBLEMS]:
                lines.append(f"       ! {problem}")
            if len(check.problems) > SHOWN_PROBLEMS:
                lines.append(f"       ! … and {len(check.problems) - SHOWN_PROBLEMS} more")
        failed = [c.name for c in self.checks if not c.ok]
        verdict = "all checks passed" if not failed else f"FAILED: {', '.join(failed)}"
        lines.append(f"== soak: {verdict}")
        return "\n".join(lines)

    def save(self, path: Path) -> None:
        data = {
            "ok": self.ok,
            "sections": self.sections,
            "details": self.details,
            "checks": [
                {"name": c.name, "ok": c.ok, "figures": c.figures, "problems": c.problems}
                for c in self.checks
            ],
        }
        path.write_text(json.dumps(data, indent=2))
