"""The reliability soak, quick: the real web, worker and simulator processes under load with
workers and web killed, subscribers failing and garbage at every route, then every promise
checked (see ``tools/soak``). About a minute; its figures are printed with ``-s`` or on failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from service.settings import PROJECT_ROOT


def test_quick_soak_keeps_every_promise(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKHOOK")}
    done = subprocess.run(
        [sys.executable, "-m", "tools.soak", "--quick", "--dir", str(tmp_path / "soak")],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = done.stdout + done.stderr
    print(output)
    assert done.returncode == 0, output
