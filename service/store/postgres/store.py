"""``PostgresStore``: the ``Store`` interface over a PostgreSQL database many processes share.

Plain reads run on the pool, each statement on whichever connection is free (autocommit: a
read sees the last committed state, as SQLite's reader does). A transaction holds one
connection from ``BEGIN`` to ``COMMIT``; its reads of rows it will change take row locks
(``PgTxQueries``), since here, unlike SQLite, two writers run at once. The 2xx a caller sends
after the block still means the row is committed: the block is left only after ``COMMIT``
returned. ``durable=False`` transactions (leases, attempts) commit without waiting for the WAL
flush (``synchronous_commit = off``): safe to lose, as on SQLite. A commit that queued a task
or wrote deliveries then notifies every listening worker (``notify.WakeNotifier``).

A lost server — restarting, unreachable — raises ``StoreUnavailable`` (503 with
``Retry-After``); the pool drops broken connections and opens new ones as they are needed, so
the service recovers by itself when the server is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import asyncpg

from service.core.secretbox import SecretBox, is_sealed
from service.errors import StoreError, StoreUnavailable
from service.store.postgres.connection import (
    CONNECTION_ERRORS,
    PgConnection,
    discard,
    is_loss,
    leased,
    unavailable_on_loss,
)
from service.store.postgres.migrate import migrate, pending
from service.store.postgres.notify import WakeNotifier
from service.store.postgres.queries import PgQueries, PgTxQueries
from service.store.reads import QueryStore
from service.store.sealing import (
    BATCH_ROWS,
    StoredSecrets,
    refuse_unknown_keys,
    resealed,
)

#: how long a statement or a connection attempt may take before the server counts as lost (a
#: 503 ``store_unavailable``). Every statement a request or a worker runs is a few index look-ups
#: and row writes, so ten seconds is a hung server or a lock that will not be released, not
#: work; migrations, which may be long, set their own (``postgres.migrate``). With
#: ``connection.ACQUIRE_TIMEOUT_S`` these bound a request while the server does not answer.
COMMAND_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0


#: what a ROLLBACK after a caller's error may raise, none of which may replace that error
_ROLLBACK_FAILURES: tuple[type[BaseException], ...] = (*CONNECTION_ERRORS, asyncpg.PostgresError)


async def _reset(conn: asyncpg.Connection[Any]) -> None:
    """What a connection needs before it goes back to the pool: nothing, unless a transaction
    was left open (a caller cancelled mid-way). asyncpg's default reset costs a round trip on
    every release, and no session state is ever set here (only ``SET LOCAL``)."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


class PostgresStore(QueryStore):
    """``url``: a ``postgresql://`` URL. ``secrets``: the box endpoint secrets are sealed with.
    ``migrate``: apply pending migrations at open (else refuse to open a database that has
    pending ones)."""

    def __init__(
        self,
        url: str,
        *,
        secrets: SecretBox | None = None,
        pool_size: int = 10,
        migrate: bool = True,
    ) -> None:
        self.url = url
        self._secrets = None if secrets is None else StoredSecrets(secrets)
        self._pool_size = pool_size
        self._migrate = migrate
        self._pool: asyncpg.Pool | None = None
        self._reads: PgQueries | None = None
        self._notifier: WakeNotifier | None = None

    async def open(self) -> list[str]:
        """Connect, migrate (or check that nothing is pending) and check that every stored
        secret is sealed under a configured key; returns the migrations applied."""
        try:
            self._pool = await asyncpg.create_pool(
                self.url,
                min_size=1,
                max_size=self._pool_size,
                command_timeout=COMMAND_TIMEOUT_S,
                timeout=CONNECT_TIMEOUT_S,
                reset=_reset,
            )
        except CONNECTION_ERRORS as exc:
            raise StoreUnavailable(
                f"Cannot connect to PostgreSQL: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            async with self._pool.acquire() as conn:
                if self._migrate:
                    applied = await migrate(conn)
                elif waiting := await pending(conn):
                    raise StoreError(
                        f"the database has pending migrations ({', '.join(waiting)});"
                        " run `taskhook db migrate`"
                    )
                else:
                    applied = []
                if self._secrets is not None:
                    rows = await conn.fetch("SELECT secret, previous_secret FROM endpoints")
                    values = [v for row in rows for v in row if v is not None]
                    refuse_unknown_keys(values, self._secrets)
                    if not all(is_sealed(v) for v in values):
                        sealed = await self._reseal(lambda v: not is_sealed(v))
                        applied.append(f"seal_endpoint_secrets ({sealed} sealed)")
        except BaseException:
            await self.close()
            raise
        self._reads = PgQueries(PgConnection(self._pool), self._secrets)
        self._notifier = WakeNotifier(self._pool)
        return applied

    async def close(self) -> None:
        pool, self._pool, self._reads = self._pool, None, None
        notifier, self._notifier = self._notifier, None
        if notifier is not None:
            await notifier.close()
        if pool is not None:
            with suppress(*CONNECTION_ERRORS):
                await asyncio.wait_for(pool.close(), timeout=10)
            pool.terminate()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError("the database is not open")
        return self._pool

    @property
    def _r(self) -> PgQueries:
        if self._reads is None:
            raise StoreError("the database is not open")
        return self._reads

    @property
    def _scan(self) -> PgQueries:
        return self._r

    @asynccontextmanager
    async def _writing(self, *, durable: bool) -> AsyncIterator[PgTxQueries]:
        """A transaction on one connection. The block is left normally only after ``COMMIT``
        returned: a ``COMMIT`` whose answer never came (the server went away mid-way) may or
        may not have committed, and is raised as ``StoreUnavailable`` — a 503 the caller
        retries (submits carry an idempotency key, callbacks are idempotent), never a 2xx for
        a row that might not be there. On a lost connection nothing is rolled back by hand:
        ``leased`` terminates it, and the server rolls back what it had."""
        async with leased(self.pool) as conn:
            begin = "BEGIN" if durable else "BEGIN; SET LOCAL synchronous_commit = off"
            await unavailable_on_loss(conn.execute(begin))
            tx = PgTxQueries(PgConnection(conn), self._secrets)
            try:
                yield tx
            except BaseException as exc:
                if not is_loss(exc):
                    try:
                        await conn.execute("ROLLBACK")
                    except _ROLLBACK_FAILURES:
                        # the caller's error stands, not this one (asyncpg's "cannot switch
                        # to state …; another operation is in progress" was seen as a 500)
                        discard(conn)
                raise
            await unavailable_on_loss(conn.execute("COMMIT"))
            if self._notifier is not None:  # the fleet's workers: there is work (after COMMIT)
                self._notifier.note(tx.wakes)

    async def reencrypt_secrets(self) -> int:
        """``taskhook secrets reencrypt``: every stored secret not under the current key moves
        to it, a batch per transaction; returns how many moved."""
        if self._secrets is None:
            raise StoreError("This store was opened without a secret key.")
        secrets = self._secrets
        return await self._reseal(lambda value: not secrets.box.is_current(value))

    async def _reseal(self, needs: Callable[[str], bool]) -> int:
        assert self._secrets is not None
        moved, after = 0, ""
        while True:
            async with self.pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(
                    "SELECT id, secret, previous_secret FROM endpoints WHERE id > $1"
                    " ORDER BY id LIMIT $2 FOR NO KEY UPDATE",
                    after,
                    BATCH_ROWS,
                )
                for row in rows:
                    values, changed = resealed(self._secrets, needs, row[0], (row[1], row[2]))
                    if changed:
                        await conn.execute(
                            "UPDATE endpoints SET secret = $1, previous_secret = $2 WHERE id = $3",
                            *values,
                            row[0],
                        )
                        moved += changed
            if len(rows) < BATCH_ROWS:
                return moved
            after = rows[-1][0]
