"""The CLI with its database unreachable: a one-line message naming the cause, a non-zero
exit, no traceback — whether the server refuses connections or never answers them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests import backends
from tests.cut_proxy import CutProxy
from tests.delivery.test_sealed_secrets import taskhook

pytestmark = pytest.mark.postgres_only

#: the admin commands (``worker`` and ``serve`` first wait up to a minute for the database:
#: tests/store/test_startup_wait.py; then ``worker`` too says why in one line)
COMMANDS = [("db", "migrate"), ("accounts", "create", "acme")]
#: nothing listens there (the discard port)
REFUSED = "postgresql://postgres@127.0.0.1:9/taskhook"


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_a_refused_database_is_a_clear_message_and_exit_1(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    done = taskhook(tmp_path, *command, TASKHOOK_DATABASE_URL=REFUSED)
    assert done.returncode == 1
    assert done.stderr.startswith("taskhook: Cannot connect to PostgreSQL: ")
    assert "Traceback" not in done.stderr


async def test_a_database_that_never_answers_is_given_up_on(
    tmp_path: Path, proxy: CutProxy
) -> None:
    await proxy.black_hole()
    url = proxy.proxied_url(backends.CURRENT.url)
    done = await asyncio.to_thread(taskhook, tmp_path, "accounts", "create", "acme",
                                   TASKHOOK_DATABASE_URL=url)  # fmt: skip
    assert done.returncode == 1
    assert "Cannot connect to PostgreSQL: TimeoutError" in done.stderr
    assert "Traceback" not in done.stderr
