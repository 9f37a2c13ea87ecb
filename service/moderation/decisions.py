"""The moderation decision log: what each stage decided about a submitted prompt, kept whether
it allowed or blocked it (the compliance team's audit trail), and the listing of it.

A submit is screened by the rules and then, when they allow it and a second stage is
configured, by the external API: one decision per stage that ran. When they are written:

- blocked: in a transaction of their own (the task's never starts);
- allowed: inside the task's transaction, so the happy path costs an INSERT, not a second
  commit. If that transaction is refused or fails after screening (402, too many tasks, the
  database), its rollback takes the decisions with it, and ``kept_if_refused`` writes them
  again, alone: the decision was made, whatever became of the task.

An Idempotency-Key replay answers with the earlier task before any screening: it decides
nothing, so it writes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from service.core.clock import Clock, to_rfc3339
from service.core.ids import new_id
from service.core.moderation import CATEGORIES, Ruleset, screen
from service.core.pagination import PageRequest
from service.errors import ValidationFailed
from service.logs import get_logger
from service.moderation.external import ExternalModeration
from service.store.base import MODERATION_VERDICTS, DecisionFilter, ModerationDecision, Store

log = get_logger("taskhook.moderation")


@dataclass(frozen=True)
class Screening:
    """The decisions of every stage that ran, and whether the prompt may go on."""

    decisions: tuple[ModerationDecision, ...]
    allowed: bool


async def screen_prompt(
    prompt: str,
    rules: Ruleset,
    external: ExternalModeration | None,
    clock: Clock,
    *,
    account_id: str,
    key_id: str | None,
    now: int,
) -> Screening:
    """The rules' decision (at ``now``, the submit's time) and, if they allowed the prompt, the
    external stage's (at the time it answered). Writes nothing: see the module docstring."""
    digest = hashlib.sha256(prompt.encode()).hexdigest()

    def decision(
        at: int,
        stage: str,
        allowed: bool,
        rule: str | None,
        category: str | None,
        error: str | None,
    ) -> ModerationDecision:
        verdict = "allowed" if allowed else "blocked"
        return ModerationDecision(
            new_id("mod", at), account_id, key_id, verdict, stage, rule, category, error, digest, at
        )

    verdict = screen(prompt, rules)
    first = decision(now, "rules", verdict.allowed, verdict.rule_id, verdict.category, None)
    if not verdict.allowed or external is None:
        return Screening((first,), verdict.allowed)
    answer = await external.check(prompt)
    second = decision(
        clock(), "external", answer.allowed, answer.flagged, answer.category, answer.error
    )
    return Screening((first, second), answer.allowed)


async def record(store: Store, decisions: Sequence[ModerationDecision]) -> None:
    """Write decisions in a transaction of their own."""
    async with store.transaction() as tx:
        await tx.insert_moderation_decisions(decisions)


@asynccontextmanager
async def kept_if_refused(
    store: Store, decisions: Sequence[ModerationDecision]
) -> AsyncIterator[None]:
    """Around the task's transaction, which writes ``decisions`` itself: if it raises, they are
    written again in one of their own, and the original error goes on. A failure of that write
    is logged rather than raised, so the caller still learns why the submit failed."""
    try:
        yield
    except Exception as refused:
        try:
            await record(store, decisions)
        except Exception as exc:
            log.error(
                "moderation.decisions_lost",
                decisions=[d.id for d in decisions],
                refused=type(refused).__name__,
                error=type(exc).__name__,
            )
        raise


def parse_decision_filter(
    query: Mapping[str, str], account_id: str, is_admin: bool
) -> DecisionFilter | None:
    """``?verdict=&category=&account_id=`` for a caller of ``account_id``: a key sees its own
    account's decisions, an admin key every account's (or the one ``account_id`` names). An
    empty value is no filter, as a form's unset field would send. ``None``: the filters match
    nothing (a non-admin naming another account; answered like one with no decisions, so an
    account's existence does not leak)."""
    verdict = query.get("verdict") or None
    if verdict is not None and verdict not in MODERATION_VERDICTS:
        raise ValidationFailed(
            f"verdict must be one of {', '.join(MODERATION_VERDICTS)}.", field="verdict"
        )
    category = query.get("category") or None
    if category is not None and category not in CATEGORIES:
        raise ValidationFailed(
            f"category must be one of {', '.join(sorted(CATEGORIES))}.", field="category"
        )
    named = query.get("account_id") or None
    if not is_admin and named not in (None, account_id):
        return None
    scope = named if is_admin else account_id
    return DecisionFilter(account_id=scope, verdict=verdict, category=category)


async def list_decisions(
    store: Store, where: DecisionFilter | None, page: PageRequest
) -> list[ModerationDecision]:
    """Newest first (ids are time-ordered), ``limit + 1`` of them."""
    return [] if where is None else await store.list_moderation_decisions(where, page)


def decision_object(d: ModerationDecision) -> dict[str, Any]:
    return {
        "id": d.id,
        "account_id": d.account_id,
        "key_id": d.key_id,
        "verdict": d.verdict,
        "stage": d.stage,
        "rule_id": d.rule_id,
        "category": d.category,
        "error": d.error,
        "prompt_sha256": d.prompt_sha256,
        "created_at": to_rfc3339(d.created_at),
    }
