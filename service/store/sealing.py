"""Secrets at rest, the store's side: endpoint secrets are sealed on write and opened on read.

The store is built with a :class:`~service.core.secretbox.SecretBox` (``app.open_store``), and
the endpoint row mapping seals ``secret`` and ``previous_secret`` as they are written and opens
them as they are read, so the use cases and the delivery worker see ``whsec_…`` as before and
the file never holds one. Opening is cached by sealed value: the worker's claim reads the same
few endpoints batch after batch, and a cache hit costs a dictionary lookup, not an AES-GCM pass.

Two steps run on the raw writer connection (``Database.exclusive``), in short transactions:

* at open, after the SQL migrations, :func:`seal_plaintext` seals any secret still in the
  clear (rows written before sealing existed) and refuses to start if a value names a key that
  is not configured: better a clear start-up error than deliveries failing one by one;
* ``taskhook secrets reencrypt`` (:func:`reencrypt`) moves every value not under the current key
  to it, after which the old key can leave ``TASKHOOK_SECRET_KEY_PREVIOUS``.

Both zero what they replace (``secure_delete``) and then truncate the WAL, so the old value does
not linger in free space or in old WAL frames (best effort: another process reading at that
moment keeps the WAL from being truncated; it is overwritten as the WAL is reused).
"""

from __future__ import annotations

import functools
import os
import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence

from service.core.secretbox import (
    NONCE_BYTES,
    SealedSecretError,
    SecretBox,
    is_sealed,
    key_id_of,
)

#: the columns of ``endpoints`` that hold a sealed secret (account webhook secrets join later)
ENDPOINT_SECRET_COLUMNS = ("secret", "previous_secret")
BATCH_ROWS = 500
CACHE_ENTRIES = 4096


def context(table: str, column: str, row_id: str) -> str:
    """What a sealed value is bound to: its table, column and row."""
    return f"{table}.{column}:{row_id}"


class StoredSecrets:
    """Seal and open stored secrets with one box; opened values are cached (thread-safe:
    the open-time step runs in the writer's thread)."""

    def __init__(
        self,
        box: SecretBox,
        *,
        nonce: Callable[[int], bytes] = os.urandom,
        cache_entries: int = CACHE_ENTRIES,
    ) -> None:
        self.box = box
        self._nonce = nonce
        self._open_cached = functools.lru_cache(maxsize=cache_entries)(box.open)

    def seal(self, plaintext: str, context: str) -> str:
        return self.box.seal(plaintext, context, self._nonce(NONCE_BYTES))

    def open(self, stored: str, context: str) -> str:
        """The plaintext of a stored value. One written before sealing existed is its own
        plaintext until the next open (or ``secrets reencrypt``) seals it."""
        if not is_sealed(stored):
            return stored
        return self._open_cached(stored, context)

    def seal_optional(self, plaintext: str | None, context: str) -> str | None:
        return None if plaintext is None else self.seal(plaintext, context)

    def open_optional(self, stored: str | None, context: str) -> str | None:
        return None if stored is None else self.open(stored, context)


def seal_plaintext(conn: sqlite3.Connection, secrets: StoredSecrets) -> int:
    """At open: refuse values sealed with a key not configured, then seal what is still in the
    clear. Returns how many values were sealed (0 once done: safe on every open)."""
    values = [
        v
        for row in conn.execute("SELECT secret, previous_secret FROM endpoints").fetchall()
        for v in row
        if v is not None
    ]
    refuse_unknown_keys(values, secrets)
    if all(is_sealed(v) for v in values):
        return 0
    return _reseal(conn, secrets, lambda value: not is_sealed(value))


def refuse_unknown_keys(values: list[str], secrets: StoredSecrets) -> None:
    """Raise if any stored value is sealed under a key ``secrets`` does not hold."""
    unknown = Counter(key_id_of(v) for v in values if is_sealed(v))
    for key_id in secrets.box.key_ids:
        unknown.pop(key_id, None)
    if unknown:
        ids = ", ".join(sorted(unknown))
        raise SealedSecretError(
            f"{sum(unknown.values())} stored endpoint secret(s) are sealed with a key that is"
            f" not configured (key id {ids}). Put the key that sealed them in"
            " TASKHOOK_SECRET_KEY_PREVIOUS (then `taskhook secrets reencrypt` moves them to"
            " the current key)."
        )


def reencrypt(conn: sqlite3.Connection, secrets: StoredSecrets, batch: int = BATCH_ROWS) -> int:
    """Move every stored secret not under the current key to it (deleted endpoints too: their
    rows keep their secrets); returns how many values moved."""
    return _reseal(conn, secrets, lambda value: not secrets.box.is_current(value), batch)


def _reseal(
    conn: sqlite3.Connection,
    secrets: StoredSecrets,
    needs: Callable[[str], bool],
    batch: int = BATCH_ROWS,
) -> int:
    """Reseal, under the current key, every value ``needs`` picks: ``batch`` rows per
    transaction, so a live service's writes wait for one batch at most."""
    moved, after = 0, ""
    (secure_delete,) = conn.execute("PRAGMA secure_delete").fetchone()
    conn.execute("PRAGMA secure_delete = ON").fetchall()
    try:
        while True:
            conn.execute("BEGIN IMMEDIATE")
            try:
                rows = conn.execute(
                    "SELECT id, secret, previous_secret FROM endpoints WHERE id > ?"
                    " ORDER BY id LIMIT ?",
                    (after, batch),
                ).fetchall()
                for row in rows:
                    moved += _reseal_row(conn, secrets, needs, row)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            if len(rows) < batch:
                break
            after = rows[-1][0]
    finally:
        conn.execute(f"PRAGMA secure_delete = {int(secure_delete)}").fetchall()
    if moved:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    return moved


def resealed(
    secrets: StoredSecrets,
    needs: Callable[[str], bool],
    endpoint_id: str,
    stored: Sequence[str | None],
) -> tuple[list[str | None], int]:
    """An endpoint's stored secrets with those ``needs`` picks sealed anew under the current
    key, and how many that was."""
    changed, values = 0, []
    for column, value in zip(ENDPOINT_SECRET_COLUMNS, stored, strict=True):
        if value is not None and needs(value):
            where = context("endpoints", column, endpoint_id)
            value = secrets.seal(secrets.open(value, where), where)
            changed += 1
        values.append(value)
    return values, changed


def _reseal_row(
    conn: sqlite3.Connection,
    secrets: StoredSecrets,
    needs: Callable[[str], bool],
    row: sqlite3.Row,
) -> int:
    endpoint_id = row[0]
    values, changed = resealed(secrets, needs, endpoint_id, row[1:])
    if changed:
        conn.execute(
            "UPDATE endpoints SET secret = ?, previous_secret = ? WHERE id = ?",
            (*values, endpoint_id),
        )
    return changed
