"""Where the bench runs things: the process under test on a CPU of its own, the rest elsewhere,
checked on real child processes and their threads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.bench import cpus, processes

ALLOWED = sorted(os.sched_getaffinity(0))
two_cpus = pytest.mark.skipif(len(ALLOWED) < 2, reason="needs two CPUs to place apart")


def test_disabled_leaves_everything_to_the_kernel() -> None:
    placement = cpus.plan(False)
    assert placement == cpus.Placement(None, None)
    assert "not pinned" in placement.describe()
    cpus.pin(0, None)  # a no-op
    assert sorted(os.sched_getaffinity(0)) == ALLOWED


@two_cpus
def test_the_service_gets_one_cpu_and_the_rest_get_the_others() -> None:
    placement = cpus.plan(True)
    assert placement.service == frozenset(ALLOWED[:1])
    assert placement.rest == frozenset(ALLOWED[1:])
    assert f"CPU {ALLOWED[0]};" in placement.describe()


@two_cpus
def test_a_started_process_and_the_threads_it_starts_later_run_where_placed(
    tmp_path: Path,
) -> None:
    script = (
        "import os, threading, time\n"
        "time.sleep(0.2)\n"
        "seen = []\n"
        "t = threading.Thread(target=lambda: seen.append(sorted(os.sched_getaffinity(0))))\n"
        "t.start(); t.join()\n"
        "print(sorted(os.sched_getaffinity(0)), flush=True)\n"
        "print(seen[0], flush=True)\n"
    )
    where = frozenset(ALLOWED[-1:])
    proc = processes.Proc("placed", [sys.executable, "-c", script], dict(os.environ),
                          tmp_path / "placed.log", where)  # fmt: skip
    with proc:
        assert os.sched_getaffinity(proc.pid) == where
        assert proc.popen is not None
        proc.popen.wait(10)
    assert proc.log_path.read_text().splitlines() == [str(sorted(where))] * 2


@two_cpus
def test_an_unplaced_child_runs_where_the_bench_placed_itself() -> None:
    # The bench pins itself to ``rest`` first, so the load generators it starts stay off the
    # service's CPU without being named one by one.
    script = (
        "import os, subprocess, sys\n"
        "from tools.bench import cpus\n"
        f"cpus.pin(0, frozenset({ALLOWED[1:]}))\n"
        "child = 'import os; print(sorted(os.sched_getaffinity(0)))'\n"
        "subprocess.run([sys.executable, '-c', child], check=True)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=processes.ROOT, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    assert out.stdout.strip() == str(ALLOWED[1:])
