"""What the processes said: warnings and errors in their JSON logs, counted by event name.

A 500 (``request.crashed``) is a failed check: the contract allows none, for good input or bad,
and it is the one failure a client cannot tell from a crash. The rest is reported, not judged:
a worker that logs a failed round and carries on is doing its job, and whether it should have
had to is for the figures to show and a person to read.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tools.soak.report import Check

#: events that mean a request was answered 500
CRASHES = frozenset({"request.crashed"})


def scan(logs: Path) -> Check:
    check = Check("no request answered 500 (process logs)")
    for path in sorted(logs.glob("*.log")):
        levels: Counter[str] = Counter()
        noisy: Counter[str] = Counter()
        for line in path.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            level = str(entry.get("level", "?"))
            levels[level] += 1
            event = str(entry.get("event", "?"))
            if level in ("warning", "error", "critical", "exception"):
                noisy[f"{level} {event}"] += 1
            if event in CRASHES:
                check.problems.append(
                    f"{path.name}: {event} {entry.get('request_id', '')}:"
                    f" {str(entry.get('exception', ''))[-300:]}"
                )
        name = path.stem
        check.figures[f"{name} log lines"] = sum(levels.values())
        for what, n in noisy.most_common(8):
            check.figures[f"{name} {what}"] = n
    return check
