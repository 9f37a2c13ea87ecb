"""SQL for the subscriber side: endpoints, deliveries (with the delivery worker's claims and
leases) and attempts.

Endpoints are soft-deleted: their deliveries and attempts keep pointing at them, so the history
stays whole, while every read an account can reach treats a deleted endpoint as never created.
Their secrets are sealed as they are written and opened as they are read (``sealing``): an
``Endpoint`` holds ``whsec_…``, its row never does.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

from service.core.endpoints import Endpoint
from service.core.pagination import PageRequest
from service.store.base import Attempt, ClaimedDelivery, Delivery, DeliveryOutcome
from service.store.rows import Row, Sql, to_json
from service.store.sealing import StoredSecrets, context

ENDPOINT_COLUMNS = (
    "id, account_id, url, description, event_types, enabled, disabled_reason, secret,"
    " previous_secret, previous_secret_until, failing_since, created_at, updated_at, deleted_at"
)
DELIVERY_COLUMNS = (
    "id, event_id, endpoint_id, account_id, status, attempts, next_attempt_at, manual,"
    " last_status, last_error, created_at, updated_at"
)
ATTEMPT_COLUMNS = (
    "id, delivery_id, number, status_code, latency_ms, response_body, error, manual, created_at"
)


def endpoint_from_row(row: Row, sealer: StoredSecrets, prefix: str = "") -> Endpoint:
    """An endpoint from its columns, named ``prefix`` + column (a join selects them aliased),
    its secrets opened."""

    def col(name: str) -> Any:
        return row[prefix + name]

    endpoint_id, event_types = col("id"), col("event_types")
    return Endpoint(
        id=endpoint_id,
        account_id=col("account_id"),
        url=col("url"),
        description=col("description"),
        event_types=None if event_types is None else tuple(json.loads(event_types)),
        enabled=bool(col("enabled")),
        disabled_reason=col("disabled_reason"),
        secret=sealer.open(col("secret"), context("endpoints", "secret", endpoint_id)),
        previous_secret=sealer.open_optional(
            col("previous_secret"), context("endpoints", "previous_secret", endpoint_id)
        ),
        previous_secret_until=col("previous_secret_until"),
        failing_since=col("failing_since"),
        created_at=col("created_at"),
        updated_at=col("updated_at"),
        deleted_at=col("deleted_at"),
    )


def delivery_from_row(row: Row) -> Delivery:
    return Delivery(
        id=row["id"],
        event_id=row["event_id"],
        endpoint_id=row["endpoint_id"],
        account_id=row["account_id"],
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        manual=bool(row["manual"]),
        last_status=row["last_status"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def attempt_from_row(row: Row) -> Attempt:
    return Attempt(
        id=row["id"],
        delivery_id=row["delivery_id"],
        number=row["number"],
        status_code=row["status_code"],
        latency_ms=row["latency_ms"],
        response_body=row["response_body"],
        error=row["error"],
        manual=bool(row["manual"]),
        created_at=row["created_at"],
    )


def _event_types(endpoint: Endpoint) -> str | None:
    return None if endpoint.event_types is None else to_json(list(endpoint.event_types))


def _sealed(sealer: StoredSecrets, endpoint: Endpoint) -> tuple[str, str | None]:
    """The endpoint's ``secret`` and ``previous_secret`` as their row holds them."""
    return (
        sealer.seal(endpoint.secret, context("endpoints", "secret", endpoint.id)),
        sealer.seal_optional(
            endpoint.previous_secret, context("endpoints", "previous_secret", endpoint.id)
        ),
    )


class DeliveryQueries(Sql):
    # -- endpoints ---------------------------------------------------------------------------

    async def insert_endpoint(self, endpoint: Endpoint) -> None:
        e = endpoint
        secret, previous_secret = _sealed(self._secrets, e)
        await self._conn.execute(
            f"INSERT INTO endpoints ({ENDPOINT_COLUMNS})"  # noqa: S608
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                e.id, e.account_id, e.url, e.description, _event_types(e), int(e.enabled),
                e.disabled_reason, secret, previous_secret, e.previous_secret_until,
                e.failing_since, e.created_at, e.updated_at, e.deleted_at,
            ),
        )  # fmt: skip

    async def update_endpoint(self, endpoint: Endpoint) -> bool:
        e = endpoint
        secret, previous_secret = _sealed(self._secrets, e)
        cursor = await self._conn.execute(
            "UPDATE endpoints SET url = ?, description = ?, event_types = ?, enabled = ?,"
            " disabled_reason = ?, secret = ?, previous_secret = ?, previous_secret_until = ?,"
            " failing_since = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL",
            (
                e.url, e.description, _event_types(e), int(e.enabled), e.disabled_reason,
                secret, previous_secret, e.previous_secret_until, e.failing_since,
                e.updated_at, e.id,
            ),
        )  # fmt: skip
        return cursor.rowcount == 1

    async def clear_endpoint_failing(self, endpoint_id: str, now_ms: int) -> None:
        await self._conn.execute(
            "UPDATE endpoints SET failing_since = NULL, updated_at = ?"
            " WHERE id = ? AND failing_since IS NOT NULL AND enabled = 1 AND deleted_at IS NULL",
            (now_ms, endpoint_id),
        )

    async def delete_endpoint(self, account_id: str, endpoint_id: str, now_ms: int) -> bool:
        cursor = await self._conn.execute(
            "UPDATE endpoints SET deleted_at = ?, enabled = 0, updated_at = ?"
            " WHERE id = ? AND account_id = ? AND deleted_at IS NULL",
            (now_ms, now_ms, endpoint_id, account_id),
        )
        return cursor.rowcount == 1

    async def get_endpoint(self, account_id: str, endpoint_id: str) -> Endpoint | None:
        row = await self._one(
            f"SELECT {ENDPOINT_COLUMNS} FROM endpoints"  # noqa: S608
            " WHERE id = ? AND account_id = ? AND deleted_at IS NULL",
            (endpoint_id, account_id),
        )
        return endpoint_from_row(row, self._secrets) if row else None

    async def get_endpoint_by_id(self, endpoint_id: str) -> Endpoint | None:
        row = await self._one(
            f"SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE id = ?{self._row_lock}",  # noqa: S608
            (endpoint_id,),
        )
        return endpoint_from_row(row, self._secrets) if row else None

    async def list_endpoints(self, account_id: str, page: PageRequest) -> list[Endpoint]:
        rows = await self._all(
            f"SELECT {ENDPOINT_COLUMNS} FROM endpoints"  # noqa: S608
            " WHERE account_id = ? AND deleted_at IS NULL AND id < ? ORDER BY id DESC LIMIT ?",
            (account_id, page.before or "~", page.limit + 1),
        )
        return [endpoint_from_row(r, self._secrets) for r in rows]

    async def endpoints_for_account(self, account_id: str) -> list[Endpoint]:
        rows = await self._all(
            f"SELECT {ENDPOINT_COLUMNS} FROM endpoints"  # noqa: S608
            " WHERE account_id = ? AND enabled = 1 AND deleted_at IS NULL ORDER BY id",
            (account_id,),
        )
        return [endpoint_from_row(r, self._secrets) for r in rows]

    # -- deliveries --------------------------------------------------------------------------

    async def insert_deliveries(self, deliveries: list[Delivery]) -> None:
        if not deliveries:
            return
        await self._conn.executemany(
            f"INSERT INTO deliveries ({DELIVERY_COLUMNS})"  # noqa: S608
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    d.id, d.event_id, d.endpoint_id, d.account_id, d.status, d.attempts,
                    d.next_attempt_at, int(d.manual), d.last_status, d.last_error,
                    d.created_at, d.updated_at,
                )
                for d in deliveries
            ],
        )  # fmt: skip

    async def get_delivery(self, account_id: str, delivery_id: str) -> Delivery | None:
        row = await self._one(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ? AND account_id = ?",  # noqa: S608
            (delivery_id, account_id),
        )
        return delivery_from_row(row) if row else None

    async def fail_pending_deliveries(self, endpoint_id: str, error: str, now_ms: int) -> int:
        cursor = await self._conn.execute(
            "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, last_error = ?,"
            " updated_at = ? WHERE endpoint_id = ? AND status = 'pending'",
            (error, now_ms, endpoint_id),
        )
        return cursor.rowcount

    async def claim_due_deliveries(
        self, now_ms: int, lease_ms: int, limit: int
    ) -> list[ClaimedDelivery]:
        """Run inside a transaction: the lease and the read of what it leased are one step."""
        token = secrets.token_hex(16)
        leased = await self._all(
            "UPDATE deliveries SET lease_until = ?, claim_token = ? WHERE id IN ("  # noqa: S608
            " SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ?"
            " AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_attempt_at"
            f" LIMIT ?{self._skip_locked})"
            " RETURNING id",
            (now_ms + lease_ms, token, now_ms, now_ms, limit),
        )
        if not leased:
            return []
        delivery_cols = ", ".join(f"d.{c.strip()}" for c in DELIVERY_COLUMNS.split(","))
        endpoint_cols = ", ".join(
            f"p.{c.strip()} AS ep_{c.strip()}" for c in ENDPOINT_COLUMNS.split(",")
        )
        # By the ids the UPDATE returned: claim_token has no index, and a lookup by it would
        # read every delivery ever made.
        marks = ", ".join("?" for _ in leased)
        rows = await self._all(
            f"SELECT {delivery_cols}, e.type AS event_type, e.payload AS event_payload,"  # noqa: S608
            f" {endpoint_cols} FROM deliveries d"
            " JOIN events e ON e.id = d.event_id JOIN endpoints p ON p.id = d.endpoint_id"
            f" WHERE d.id IN ({marks}) ORDER BY d.next_attempt_at, d.id",
            tuple(r["id"] for r in leased),
        )
        endpoints: dict[str, Endpoint] = {}  # a batch has few endpoints: parse each once
        claimed = []
        for r in rows:
            endpoint = endpoints.get(r["endpoint_id"])
            if endpoint is None:
                endpoint = endpoints[r["endpoint_id"]] = endpoint_from_row(
                    r, self._secrets, prefix="ep_"
                )
            claimed.append(
                ClaimedDelivery(
                    delivery=delivery_from_row(r),
                    claim_token=token,
                    event_id=r["event_id"],
                    event_type=r["event_type"],
                    payload=r["event_payload"],
                    endpoint=endpoint,
                )
            )
        return claimed

    async def finish_deliveries(self, outcomes: Sequence[DeliveryOutcome]) -> int:
        # One prepared statement for the batch; the total rowcount says whether a claim was
        # lost (the caller decides what to do about it).
        cursor = await self._conn.executemany(
            "UPDATE deliveries SET status = ?, next_attempt_at = ?, attempts = ?,"
            " last_status = ?, last_error = ?, updated_at = ?, lease_until = NULL,"
            " claim_token = NULL WHERE id = ? AND claim_token = ?",
            [
                (
                    o.status, o.next_attempt_at, o.attempts, o.last_status, o.last_error,
                    o.updated_at, o.claimed.delivery.id, o.claimed.claim_token,
                )
                for o in outcomes
            ],
        )  # fmt: skip
        return cursor.rowcount

    async def list_deliveries_for_event(self, event_id: str, page: PageRequest) -> list[Delivery]:
        rows = await self._all(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries"  # noqa: S608
            " WHERE event_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
            (event_id, page.before or "~", page.limit + 1),
        )
        return [delivery_from_row(r) for r in rows]

    async def list_deliveries_for_endpoint(
        self, endpoint_id: str, status: str | None, page: PageRequest
    ) -> list[Delivery]:
        where = "endpoint_id = ? AND id < ?" + (" AND status = ?" if status else "")
        rows = await self._all(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE {where}"  # noqa: S608
            " ORDER BY id DESC LIMIT ?",
            (endpoint_id, page.before or "~", *((status,) if status else ()), page.limit + 1),
        )
        return [delivery_from_row(r) for r in rows]

    # -- attempts ----------------------------------------------------------------------------

    async def renew_delivery_lease(self, claimed: ClaimedDelivery, lease_until: int) -> bool:
        cursor = await self._conn.execute(
            "UPDATE deliveries SET lease_until = ? WHERE id = ? AND claim_token = ?"
            " AND status = 'pending'",
            (lease_until, claimed.delivery.id, claimed.claim_token),
        )
        return cursor.rowcount == 1

    async def insert_attempts(self, attempts: Sequence[Attempt]) -> None:
        await self._conn.executemany(
            f"INSERT INTO attempts ({ATTEMPT_COLUMNS})"  # noqa: S608
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    a.id, a.delivery_id, a.number, a.status_code, a.latency_ms,
                    a.response_body, a.error, int(a.manual), a.created_at,
                )
                for a in attempts
            ],
        )  # fmt: skip

    async def list_attempts(self, delivery_id: str) -> list[Attempt]:
        # By number, then insertion: ids made in the same millisecond sort at random.
        rows = await self._all(
            f"SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery_id = ?"  # noqa: S608
            " ORDER BY number, rowid",
            (delivery_id,),
        )
        return [attempt_from_row(r) for r in rows]
