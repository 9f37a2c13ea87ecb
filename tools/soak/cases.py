"""One garbage request and what became of it: shared by ``garbage`` and ``forgery``.

A case names the answers the contract allows for it, and optionally a further check on a right
status code's body (a 200 that leaks another account's rows is still wrong).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tools.soak.api import Answer

#: given an answer whose status was expected, a description of what is still wrong, or None
Check = Callable[[Answer], str | None]


@dataclass(frozen=True)
class Case:
    kind: str
    method: str
    path: str
    expect: frozenset[int]
    key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    check: Check | None = None


@dataclass(frozen=True)
class Result:
    kind: str
    method: str
    path: str
    #: None: no answer (web was down)
    status: int | None
    expected: bool
    detail: str = ""


def judge(case: Case, answer: Answer) -> Result:
    """Whether ``answer`` is one the contract allows for ``case``."""
    expected = answer.status in case.expect
    detail = ""
    if expected and case.check is not None:
        problem = case.check(answer)
        expected, detail = problem is None, problem or ""
    elif not expected and answer.status is not None:
        detail = str(answer.body)[:300]
    path = case.path if len(case.path) < 120 else case.path[:117] + "..."
    return Result(case.kind, case.method, path, answer.status, expected, detail)


def empty_list(answer: Answer) -> str | None:
    """A list filtered by another account's id must come back empty."""
    data = answer.field("data")
    return None if data == [] else f"another account's rows: {str(data)[:200]}"
