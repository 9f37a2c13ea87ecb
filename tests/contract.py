"""Facts copied from ../shared/CONTRACT.md, for tests to hold the code to (not derived from it)."""

from __future__ import annotations

#: The task object's fields as the contract lists them, plus the additive ``sequence``.
TASK_FIELDS = frozenset(
    {
        "id", "status", "progress", "sequence", "model", "provider", "provider_task_id", "type",
        "prompt", "params", "results", "failure", "cost_credits", "refunded_credits",
        "metadata", "created_at", "updated_at", "completed_at",
    }
)  # fmt: skip
