"""The assets bench's parts run and report real figures (not how fast: that is the bench's)."""

from __future__ import annotations

from pathlib import Path

from tools.bench import assets


def test_mirroring_is_measured_against_the_raw_loop_on_the_same_images(tmp_path: Path) -> None:
    figures = assets.mirroring(tmp_path, count=3, concurrency=2, runs=1, side=128)
    assert figures["images"] == 3
    for key in ("raw_mb_s", "taskhook_mb_s", "no_fsync_mb_s", "ratio", "no_fsync_ratio"):
        assert figures[key] > 0, key
    kept = [p for p in (tmp_path / "ours-0" / "assets").rglob("*") if p.is_file()]
    assert len([p for p in kept if ".staging" not in p.parts]) == 3  # each image kept, once


def test_memory_is_read_in_a_fresh_process(tmp_path: Path) -> None:
    grown = assets.memory(tmp_path, side=64, count=2, concurrency=2)
    assert grown >= 0
