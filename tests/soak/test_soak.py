"""The reliability soak, quick: the real web, worker and simulator processes under load with
workers and web killed, subscribers failing and garbage at every route, then every promise
checked (see ``tools/soak``). About a minute each; figures are printed with ``-s`` or on failure.

Twice: on SQLite (one ``web``, one ``worker``), and on PostgreSQL (two of each behind a
round-robin balancer, on a throwaway server of the soak's own that it crashes mid-run — never
the shared one). The PostgreSQL run needs the server binaries (``initdb``, ``pg_ctl``); without
them it is skipped, with the reason in the summary, unless ``TASKHOOK_REQUIRE_POSTGRES=1`` (CI
sets it), when it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from service.settings import PROJECT_ROOT
from tests.backends import SERVER_URL

#: names PostgreSQL for the soak; with its restart fault it runs a server of its own instead
PG_URL = SERVER_URL


def _run_soak(*args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKHOOK")}
    done = subprocess.run(
        [sys.executable, "-m", "tools.soak", "--quick", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    print(output)
    assert done.returncode == 0, output


def test_quick_soak_keeps_every_promise(tmp_path: Path) -> None:
    _run_soak("--dir", str(tmp_path / "soak"))


def _postgres_missing() -> str | None:
    """Why the PostgreSQL soak cannot run here, or None."""
    if list(Path("/usr/lib/postgresql").glob("*/bin/initdb")) or shutil.which("pg_config"):
        return None
    return "no PostgreSQL server binaries (initdb, pg_ctl) to run a server of the soak's own"


def test_quick_soak_on_postgresql_with_replicas_and_a_restart(tmp_path: Path) -> None:
    missing = _postgres_missing()
    if missing is not None:
        if os.environ.get("TASKHOOK_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"TASKHOOK_REQUIRE_POSTGRES=1 but {missing}")
        pytest.skip(f"PostgreSQL soak SKIPPED: {missing}")
    _run_soak("--database", PG_URL, "--dir", str(tmp_path / "soak"))
