"""Credits: the balance is the sum of the entries; grants, charges and the one refund."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.core.credits import CreditEntry, EntryKind, balance, charge, grant, refund
from service.errors import InsufficientCredits, TaskhookError

T0 = 1_700_000_000_000


def entry(delta: int, kind: EntryKind = EntryKind.GRANT) -> CreditEntry:
    return CreditEntry("cred_x", "acct_x", kind, delta, None, T0)


# --- balance ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "deltas",
    [[], [10], [10, -3], [100, -15, -20, 15], [5, -5], [1] * 50],
)
def test_balance_is_the_sum_of_deltas(deltas: list[int]) -> None:
    assert balance(entry(d) for d in deltas) == sum(deltas)


def test_balance_accepts_any_iterable_once() -> None:
    entries = iter([entry(7), entry(-2)])
    assert balance(entries) == 5


# --- grant --------------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", [1, 15, 1_000_000])
def test_grant_adds_a_positive_entry(amount: int) -> None:
    made = grant("cred_1", "acct_1", amount, T0)
    assert made.kind is EntryKind.GRANT
    assert made.delta == amount
    assert made.account_id == "acct_1"
    assert made.id == "cred_1"
    assert made.task_id is None
    assert made.created_at == T0


@pytest.mark.parametrize("amount", [0, -1, -100, True, False, 1.5, 10.0, "10", None])
def test_grant_refuses_anything_but_a_positive_int(amount: Any) -> None:
    with pytest.raises(ValueError, match="positive"):
        grant("cred_1", "acct_1", amount, T0)


# --- charge -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cost", "balance_now"),
    [(15, 100), (15, 15), (0, 0), (1, 1), (20, 21)],
)
def test_charge_when_covered(cost: int, balance_now: int) -> None:
    made = charge("cred_2", "acct_1", "task_1", cost, balance_now, T0)
    assert made.kind is EntryKind.CHARGE
    assert made.delta == -cost
    assert made.task_id == "task_1"
    assert made.account_id == "acct_1"
    assert made.created_at == T0


@pytest.mark.parametrize(("cost", "balance_now"), [(15, 14), (1, 0), (20, -5), (100, 99)])
def test_charge_when_short_is_402(cost: int, balance_now: int) -> None:
    with pytest.raises(InsufficientCredits) as caught:
        charge("cred_2", "acct_1", "task_1", cost, balance_now, T0)
    assert caught.value.status_code == 402
    assert caught.value.code == "insufficient_credits"
    assert isinstance(caught.value, TaskhookError)


def test_charge_refuses_a_negative_cost() -> None:
    with pytest.raises(ValueError, match="negative"):
        charge("cred_2", "acct_1", "task_1", -5, 100, T0)


# --- refund -------------------------------------------------------------------------------------


@pytest.mark.parametrize("charged", [1, 15, 96])
def test_refund_returns_the_full_charge(charged: int) -> None:
    made = refund("cred_3", "acct_1", "task_1", charged, 0, T0)
    assert made is not None
    assert made.kind is EntryKind.REFUND
    assert made.delta == charged
    assert made.task_id == "task_1"
    assert made.account_id == "acct_1"


@pytest.mark.parametrize(
    ("charged", "refunded"),
    [
        pytest.param(15, 15, id="already-refunded"),
        pytest.param(15, 5, id="partly-refunded"),
        pytest.param(0, 0, id="nothing-charged"),
        pytest.param(-3, 0, id="negative-charge"),
    ],
)
def test_refund_none_when_nothing_is_owed(charged: int, refunded: int) -> None:
    assert refund("cred_3", "acct_1", "task_1", charged, refunded, T0) is None


# --- properties ---------------------------------------------------------------------------------

operations = st.lists(
    st.one_of(
        st.tuples(st.just("grant"), st.integers(min_value=1, max_value=500)),
        st.tuples(st.just("charge"), st.integers(min_value=0, max_value=200)),
    ),
    max_size=40,
)


@given(ops=operations, refund_index=st.integers(min_value=0, max_value=60))
def test_any_mix_of_grants_charges_and_one_refund(
    ops: list[tuple[str, int]], refund_index: int
) -> None:
    entries: list[CreditEntry] = []
    granted = charged = 0
    charges: list[tuple[str, int]] = []

    for i, (op, amount) in enumerate(ops):
        if op == "grant":
            entries.append(grant(f"cred_{i}", "acct_1", amount, T0 + i))
            granted += amount
            continue
        current = balance(entries)
        if current < amount:
            with pytest.raises(InsufficientCredits):
                charge(f"cred_{i}", "acct_1", f"task_{i}", amount, current, T0 + i)
            continue
        entries.append(charge(f"cred_{i}", "acct_1", f"task_{i}", amount, current, T0 + i))
        charged += amount
        charges.append((f"task_{i}", amount))

    refunded = 0
    if charges:
        task_id, cost = charges[refund_index % len(charges)]
        first = refund("cred_r1", "acct_1", task_id, cost, 0, T0)
        if cost > 0:
            assert first is not None
            entries.append(first)
            refunded = cost
        else:
            assert first is None
        assert refund("cred_r2", "acct_1", task_id, cost, refunded, T0) is None, "at most once"

    assert balance(entries) == granted - charged + refunded
    assert balance(entries) == sum(e.delta for e in entries)
    assert balance(entries) >= 0
    assert sum(1 for e in entries if e.kind is EntryKind.REFUND) <= 1
