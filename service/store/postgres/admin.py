"""A PostgreSQL server's URLs and databases: what ``settings``, ``db copy``, the soak, the bench
and the tests each need to name another database on the same server, or make and drop one."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and urlsplit(url or "").scheme in ("postgres", "postgresql")


def with_database(url: str, database: str, search_path: str | None = None) -> str:
    """``url`` with the same server, user and options, naming ``database`` (and, when given, a
    ``search_path`` instead of its options)."""
    parts = urlsplit(url)
    query = f"search_path={search_path}" if search_path else parts.query
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", query, ""))


async def create_database(server_url: str, name: str, template: str | None = None) -> str:
    """A new empty database (or a copy of ``template``) on the server; its URL."""
    copy = f' TEMPLATE "{template}"' if template else ""
    await _admin(server_url, f'CREATE DATABASE "{name}"{copy}')
    return with_database(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    """Drop ``name``, ending any session still on it."""
    await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _admin(server_url: str, sql: str) -> None:
    conn = await asyncpg.connect(with_database(server_url, "postgres"), timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
