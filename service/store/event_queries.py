"""SQL for the event log and what replays need: events by account or by id, the filtered and
paged log, the failed deliveries an endpoint recovery would send again, pages of attempts, and
the operator's unscoped look-ups.

Account scoping is in every query an API caller reaches (``account_id = ?``); the ``*_by_id``
reads are for the operator CLI, which acts across accounts by design.
"""

from __future__ import annotations

from service.core.events import Event
from service.core.pagination import PageRequest
from service.store.base import Attempt, CallbackRecord, EventFilter
from service.store.delivery_queries import ATTEMPT_COLUMNS, attempt_from_row
from service.store.rows import CALLBACK_COLUMNS, Row, Sql, callback_from_row

EVENT_COLUMNS = "id, account_id, type, task_id, payload, created_at"


def event_from_row(row: Row) -> Event:
    return Event(
        id=row["id"],
        account_id=row["account_id"],
        type=row["type"],
        task_id=row["task_id"],
        payload=row["payload"],
        created_at=row["created_at"],
    )


class EventQueries(Sql):
    async def get_event(self, account_id: str, event_id: str) -> Event | None:
        row = await self._one(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE id = ? AND account_id = ?",  # noqa: S608
            (event_id, account_id),
        )
        return event_from_row(row) if row else None

    async def get_event_by_id(self, event_id: str) -> Event | None:
        row = await self._one(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE id = ?",  # noqa: S608
            (event_id,),
        )
        return event_from_row(row) if row else None

    async def list_events(
        self, account_id: str, where: EventFilter, page: PageRequest
    ) -> list[Event]:
        filters = [
            ("type = ?", where.type),
            ("task_id = ?", where.task_id),
            ("created_at > ?", where.after),
            ("created_at < ?", where.before),
        ]
        rows = await self._newest_first("events", EVENT_COLUMNS, account_id, page, filters)
        return [event_from_row(r) for r in rows]

    async def recoverable_events(self, endpoint_id: str, since: int, until: int) -> list[Event]:
        """Events with a failed delivery to the endpoint created in ``[since, until)``, oldest
        first, once each — leaving out any that has since reached the endpoint or is on its way
        there (a delivered or pending delivery of it), so a second recovery sends nothing twice,
        and any whose payload retention has purged (``''``: nothing left to send)."""
        rows = await self._all(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE id IN ("  # noqa: S608
            " SELECT event_id FROM deliveries WHERE endpoint_id = ? AND status = 'failed'"
            " AND created_at >= ? AND created_at < ?)"
            " AND NOT EXISTS (SELECT 1 FROM deliveries o WHERE o.event_id = events.id"
            " AND o.endpoint_id = ? AND o.status IN ('pending', 'delivered'))"
            " AND payload <> '' ORDER BY id",
            (endpoint_id, since, until, endpoint_id),
        )
        return [event_from_row(r) for r in rows]

    async def list_attempts_after(
        self, delivery_id: str, after_id: str | None, limit: int
    ) -> list[Attempt]:
        """Up to ``limit + 1`` attempts of a delivery in the order they were made, starting after
        the attempt ``after_id`` (numbers, not ids, give the order: see ``list_attempts``). An
        ``after_id`` that is not one of this delivery's attempts is no place in the list: the
        page is empty."""
        after = "0"
        args: tuple[str | int, ...] = (delivery_id,)
        if after_id is not None:
            after = "(SELECT number FROM attempts WHERE id = ? AND delivery_id = ?)"
            args = (delivery_id, after_id, delivery_id)
        rows = await self._all(
            f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery_id = ?"  # noqa: S608
            f" AND number > {after} ORDER BY number, rowid LIMIT ?",
            (*args, limit + 1),
        )
        return [attempt_from_row(r) for r in rows]

    async def get_callback_by_id(self, callback_id: str) -> CallbackRecord | None:
        row = await self._one(
            f"SELECT {CALLBACK_COLUMNS} FROM callbacks WHERE id = ?",  # noqa: S608
            (callback_id,),
        )
        return callback_from_row(row) if row else None
