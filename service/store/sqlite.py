"""``SqliteStore``: the ``Store`` interface over one SQLite file (WAL, single writer)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import aiosqlite

from service.core.secretbox import SecretBox
from service.errors import StoreError
from service.store.database import Database
from service.store.inline import InlineConnection
from service.store.migrate import migrate, pending
from service.store.queries import Queries
from service.store.reads import QueryStore
from service.store.sealing import StoredSecrets, reencrypt, seal_plaintext


class SqliteStore(QueryStore):
    """``secrets``: the box endpoint secrets are sealed with (``app.open_store`` passes the one
    the secret keys make); a store without one cannot read or write endpoints."""

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_ms: int = 5000,
        synchronous: str = "FULL",
        secrets: SecretBox | None = None,
        migrate: bool = True,
    ):
        self.db = Database(path, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous)
        self._secrets = None if secrets is None else StoredSecrets(secrets)
        self._reads: Queries | None = None
        self._migrate = migrate

    async def open(self) -> list[str]:
        """Open the connections, apply pending migrations and seal any secret still in the
        clear; returns what was applied. Refuses a database whose secrets name a key that is
        not configured."""
        await self.db.open()
        try:
            if self._migrate:
                applied = await self.db.exclusive(migrate)
            elif waiting := await self.db.exclusive(pending):
                raise StoreError(
                    f"the database has pending migrations ({', '.join(waiting)});"
                    " run `taskhook db migrate`"
                )
            else:
                applied = []
            if self._secrets is not None:
                sealed = await self.db.exclusive(partial(seal_plaintext, secrets=self._secrets))
                if sealed:
                    applied.append(f"seal_endpoint_secrets ({sealed} sealed)")
        except BaseException:
            await self.db.close()
            raise
        self._reads = self.queries(self.db.reader)
        return applied

    def queries(self, conn: InlineConnection | aiosqlite.Connection) -> Queries:
        """Every query, on ``conn``, sealing and opening secrets with this store's box."""
        return Queries(conn, self._secrets)

    async def reencrypt_secrets(self) -> int:
        """``taskhook secrets reencrypt``: every stored secret not under the current key moves
        to it, a batch per transaction; returns how many moved."""
        if self._secrets is None:
            raise StoreError("This store was opened without a secret key.")
        return await self.db.exclusive(partial(reencrypt, secrets=self._secrets))

    async def close(self) -> None:
        await self.db.close()
        self._reads = None

    @property
    def _r(self) -> Queries:
        if self._reads is None:
            self._reads = self.queries(self.db.reader)
        return self._reads

    @property
    def _scan(self) -> Queries:
        return self.queries(self.db.scan_reader)

    @asynccontextmanager
    async def _writing(self, *, durable: bool) -> AsyncIterator[Queries]:
        async with self.db.transaction(durable=durable) as conn:
            yield self.queries(conn)
