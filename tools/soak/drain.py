"""The drain: faults over, every subscriber well again; wait (time-boxed) until the service has
nothing left to do, then recover what exhausted its retry schedule, as a subscriber would after
an outage, and wait for that too.

Recovery is the service's documented answer to "my endpoint was down past the retries"
(``POST /v1/endpoints/{id}/recover``); an exhausted delivery is kept for exactly this. A
delivery given up *before* its schedule ran out would be a loss in disguise, and
``checks_delivery`` fails it separately, so recovering here hides nothing.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from service.core.clock import to_rfc3339
from tools.soak import db
from tools.soak.accounts import Account
from tools.soak.api import BUSY, Api
from tools.soak.receivers import Receiver

_OPEN_TASKS = "SELECT COUNT(*) FROM tasks WHERE status NOT IN ('succeeded', 'failed')"
_PENDING = (
    "SELECT COUNT(*) FROM deliveries d JOIN endpoints p ON p.id = d.endpoint_id"
    " WHERE d.status = 'pending' AND CAST(p.enabled AS INTEGER) = 1 AND p.deleted_at IS NULL"
)


@dataclass
class Drained:
    seconds: float
    open_tasks: int
    pending: int
    recovered: int


def heal(receivers: list[Receiver]) -> None:
    for receiver in receivers:
        receiver.healed = True


async def _left(database: db.Source) -> tuple[int, int]:
    return await db.count(database, _OPEN_TASKS), await db.count(database, _PENDING)


async def drain(
    database: db.Source, api: Api, accounts: list[Account], since_ms: int, budget_s: float
) -> Drained:
    started = time.monotonic()
    deadline = started + budget_s
    recovered: int | None = None
    open_tasks, pending = await _left(database)
    while time.monotonic() < deadline:
        open_tasks, pending = await _left(database)
        if open_tasks == 0 and pending == 0:
            if recovered is not None:
                break
            recovered = await _recover(api, accounts, since_ms)
            if recovered == 0:
                break
        await asyncio.sleep(0.5)
    await asyncio.sleep(0.5)  # a copy answered 2xx is recorded by its receiver before the row
    return Drained(round(time.monotonic() - started, 1), open_tasks, pending, recovered or 0)


async def _recover(api: Api, accounts: list[Account], since_ms: int) -> int:
    """Re-send every failed delivery of each endpoint still enabled; how many were queued."""
    total = 0
    for account in accounts:
        for receiver in account.receivers:
            answer = await api.settled(
                "POST",
                f"/v1/endpoints/{receiver.endpoint_id}/recover",
                retry_on=BUSY,
                key=account.key,
                body={"since": to_rfc3339(since_ms)},
            )
            if answer.status in (200, 202):
                total += int(answer.field("count") or 0)
            elif answer.status != 409:  # 409: disabled by a 410, excused by design
                raise RuntimeError(f"recover {receiver.name}: {answer.status} {answer.body}")
    return total
