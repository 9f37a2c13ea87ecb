"""``python -m service replay event|endpoint|callback``: the operator's replays, run as a real
subprocess on the bench's database. They reach any account's objects by id, print one line,
and exit 1 with a message for an id that does not exist."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.core.clock import to_rfc3339
from service.settings import PROJECT_ROOT
from tests.conftest import EXTERNAL_PROVIDERS, settings_env
from tests.replay.conftest import T0, Bench
from tests.upstream.test_callback_rejections import Harness, success_body

MANUAL = "SELECT event_id, endpoint_id, status FROM deliveries WHERE manual = 1 ORDER BY id"


async def taskhook(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a thread, so this test's servers keep answering meanwhile."""
    env = {**os.environ, **settings_env(tmp_path, **EXTERNAL_PROVIDERS)}
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "service", "replay", *args],
        env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    return lines[0]


async def test_replay_event_to_all_or_to_one_endpoint(bench: Bench, tmp_path: Path) -> None:
    who = await bench.caller()
    one = (await bench.endpoint(who, "/one"))["id"]
    two = (await bench.endpoint(who, "/two"))["id"]
    event = await bench.event(who)

    everyone = one_line(await taskhook(tmp_path, "event", event.id))
    only_one = one_line(await taskhook(tmp_path, "event", event.id, "--endpoint", one))

    assert everyone in (
        f"replayed {event.id}: 2 deliveries queued ({one}, {two})",
        f"replayed {event.id}: 2 deliveries queued ({two}, {one})",
    )
    assert only_one == f"replayed {event.id}: 1 delivery queued ({one})"
    rows = await bench.rows(MANUAL)
    assert sorted(r[1] for r in rows) == sorted([one, two, one])
    assert {(r[0], r[2]) for r in rows} == {(event.id, "pending")}


async def test_replay_endpoint_dry_run_then_for_real(bench: Bench, tmp_path: Path) -> None:
    who = await bench.caller()
    endpoint = (await bench.endpoint(who))["id"]
    bench.at(T0 + 10_000)
    await bench.failed_event(who, endpoint)  # before the window
    bench.at(T0 + 20_000)
    new = await bench.failed_event(who, endpoint)
    since, until = to_rfc3339(T0 + 15_000), to_rfc3339(T0 + 25_000)
    everything = await bench.rows("SELECT * FROM deliveries ORDER BY id")

    dry = one_line(await taskhook(tmp_path, "endpoint", endpoint, "--since", since, "--dry-run"))

    assert dry == f"{endpoint}: 1 failed delivery to re-send (dry run)"
    assert await bench.rows("SELECT * FROM deliveries ORDER BY id") == everything

    done = await taskhook(tmp_path, "endpoint", endpoint, "--since", since, "--until", until)

    assert one_line(done) == f"{endpoint}: 1 failed delivery queued again"
    assert await bench.rows(MANUAL) == [(new.id, endpoint, "pending")]


async def test_replay_callback_changes_nothing_once_applied(bench: Bench, tmp_path: Path) -> None:
    bench.realtime()
    who = await bench.caller()
    h = Harness(bench.app, bench.client, bench.store)
    task = await h.submitted_task(who)
    callback_id = (await h.deliver(task["id"], success_body())).json()["id"]
    before = await h.snapshot(who, task["id"])

    line = one_line(await taskhook(tmp_path, "callback", callback_id))

    assert line == f"{callback_id} ({task['id']}): applied"
    assert await h.snapshot(who, task["id"]) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["event", "evt_01J00000000000000000000000"], "No such event."),
        (["event", "nope"], "No such event."),
        (["endpoint", "ep_01J00000000000000000000000", "--since", "2026-01-01T00:00:00Z"],
         "No such endpoint."),
        (["endpoint", "ep_x", "--since", "last week"], "since must be an RFC 3339 timestamp"),
        (["callback", "cb_01J00000000000000000000000"], "No such callback."),
    ],
)  # fmt: skip
async def test_unknown_ids_exit_1_with_a_message(
    bench: Bench, tmp_path: Path, args: list[str], message: str
) -> None:
    done = await taskhook(tmp_path, *args)

    assert done.returncode == 1, (done.stdout, done.stderr)
    assert message in done.stderr
    assert done.stdout == ""
    assert await bench.rows("SELECT COUNT(*) FROM deliveries") == [(0,)]
