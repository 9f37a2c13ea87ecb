"""``serve`` and ``worker`` tune the cycle collector for a server's load (``cli.main`` calls
``collect_garbage_rarely`` before either runs)."""

from __future__ import annotations

import json
import subprocess
import sys

from service.cli import GC_YOUNG_THRESHOLD


def test_collecting_rarely_raises_the_young_threshold_and_freezes_what_exists() -> None:
    # In a process of its own: the collector's settings are the interpreter's, not a test's.
    script = (
        "import gc, json\n"
        "from service.cli import collect_garbage_rarely\n"
        "before = gc.get_threshold()\n"
        "collect_garbage_rarely()\n"
        "print(json.dumps([before, gc.get_threshold(), gc.get_freeze_count()]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    before, after, frozen = json.loads(out.stdout)
    assert after == [GC_YOUNG_THRESHOLD, *before[1:]]
    assert after[0] > 10 * before[0]
    assert frozen > 10_000  # the modules and their objects, loaded before the call
