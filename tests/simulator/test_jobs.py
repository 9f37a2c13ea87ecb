"""The pure parts of the simulator: prompt tags, the failure-rate hash, job snapshots."""

from __future__ import annotations

import json

from service.providers.simulator.jobs import (
    Job,
    Tags,
    fails_by_rate,
    parse_create,
    parse_tags,
)


def test_no_tags() -> None:
    assert parse_tags("a plain prompt [sim:unknown] [sim:delay=]") == Tags()


def test_tags_combine_anywhere_and_ignore_case() -> None:
    tags = parse_tags("[SIM:FAIL] a [sim:Duplicate] b [sim:reorder][sim:drop] [sim:busy]")
    assert tags == Tags(fail=True, duplicate=True, reorder=True, drop=True, busy=True)


def test_delay_is_parsed_and_capped() -> None:
    assert parse_tags("x [sim:delay=1.5]").delay_s == 1.5
    assert parse_tags("x [sim:delay=.25]").delay_s == 0.25
    assert parse_tags("[sim:delay=3] then [sim:delay=2]").delay_s == 2
    assert parse_tags("[sim:delay=100000]").delay_s == 600


def test_failure_rate_is_deterministic_and_roughly_right() -> None:
    assert not fails_by_rate("p", 1, 0.0)
    assert fails_by_rate("p", 1, 1.0)
    outcomes = [fails_by_rate(f"prompt {i}", i, 0.3) for i in range(2000)]
    assert outcomes == [fails_by_rate(f"prompt {i}", i, 0.3) for i in range(2000)]
    assert 0.25 < sum(outcomes) / len(outcomes) < 0.35


def _job(fails: bool = False) -> Job:
    request = parse_create({"model": "m", "input": {"prompt": "p", "num_images": 2}})
    return Job("sim_1", request, Tags(), fails, created_ms=1_000, due_ms=2_000, image_id="img_1")


def test_snapshots_follow_elapsed_time() -> None:
    job = _job()
    assert job.data(1_010, "http://s")["state"] == "waiting"
    assert job.data(1_010, "http://s")["progress"] == 0
    middle = job.data(1_500, "http://s")
    assert (middle["state"], middle["progress"]) == ("generating", 50)
    assert job.data(1_999, "http://s")["progress"] == 99
    done = job.data(5_000, "http://s/")
    assert done["state"] == "success"
    assert json.loads(done["resultJson"]) == {
        "resultUrls": ["http://s/images/img_1/0.png", "http://s/images/img_1/1.png"]
    }
    assert (done["costTime"], done["createTime"], done["completeTime"]) == (1_000, 1_000, 2_000)


def test_forced_progress_snapshot() -> None:
    data = _job().data(1_100, "http://s", progress=42)
    assert (data["state"], data["progress"]) == ("generating", 42)


def test_failed_snapshot() -> None:
    data = _job(fails=True).data(2_000, "http://s")
    assert data["state"] == "fail"
    assert (data["failCode"], data["failMsg"], data["resultJson"]) == (
        "500",
        "Simulated failure",
        "",
    )
