"""Credit entries and the balance they add up to.

The balance is never a counter that can drift: it is the sum of an account's entries. A task is
charged once when accepted and refunded at most once, in full, when it fails.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from service.errors import InsufficientCredits


class EntryKind(StrEnum):
    GRANT = "grant"
    CHARGE = "charge"
    REFUND = "refund"


@dataclass(frozen=True)
class CreditEntry:
    id: str
    account_id: str
    kind: EntryKind
    delta: int
    task_id: str | None
    created_at: int


def balance(entries: Iterable[CreditEntry]) -> int:
    """The balance is the sum of the deltas, nothing else."""
    return sum(entry.delta for entry in entries)


def grant(entry_id: str, account_id: str, amount: int, now_ms: int) -> CreditEntry:
    """Credits added by an operator. Only positive amounts: taking credits away is a charge."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError("a grant must be a positive whole number of credits")
    return CreditEntry(entry_id, account_id, EntryKind.GRANT, amount, None, now_ms)


def charge(
    entry_id: str, account_id: str, task_id: str, cost: int, balance_now: int, now_ms: int
) -> CreditEntry:
    """The charge for a task, refused with 402 when ``balance_now`` does not cover ``cost``."""
    if cost < 0:
        raise ValueError("a cost cannot be negative")
    if balance_now < cost:
        raise InsufficientCredits(
            f"This task costs {cost} credits and the balance is {balance_now}."
        )
    return CreditEntry(entry_id, account_id, EntryKind.CHARGE, -cost, task_id, now_ms)


def refund(
    entry_id: str, account_id: str, task_id: str, charged: int, refunded: int, now_ms: int
) -> CreditEntry | None:
    """The refund a failed task is owed, or ``None`` when it has none coming.

    ``charged`` and ``refunded`` are the task's totals so far; a task that was already refunded,
    or cost nothing, gets nothing: this is what makes a refund happen at most once.
    """
    owed = charged - refunded
    if refunded > 0 or owed <= 0:
        return None
    return CreditEntry(entry_id, account_id, EntryKind.REFUND, owed, task_id, now_ms)
