"""Logs: JSON lines with a request id on each, and never a key, secret or token."""

from __future__ import annotations

import json

import httpx
import pytest
import structlog

from service.logs import REDACTED, configure_logging, get_logger, redact
from service.web.middleware import loggable_path
from tests.conftest import Caller
from tests.upstream.test_callback_rejections import Harness, success_body


def test_redact_blanks_sensitive_names_and_masks_key_shapes() -> None:
    raw_key = "thk_0123456789ab_" + "A" * 43
    event = {
        "event": "x",
        "secret": "s3cret",
        "Authorization": "Bearer abc",
        "webhook_signature": "v1,abc",
        "callback_token": "tok",
        "note": f"presented {raw_key} and whsec_QUJDREVGR0g=",
    }
    out = redact(None, "info", event)
    for name in ("secret", "Authorization", "webhook_signature", "callback_token"):
        assert out[name] == REDACTED
    assert raw_key not in out["note"]
    assert "QUJDREVGR0g" not in out["note"]
    assert out["note"].startswith("presented thk_0123456789ab_")


def test_a_logger_follows_the_configuration_in_force_at_each_call(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Loggers are made at import and bound once per configuration: one used under an old
    configuration still follows a new one (level and format), and a reset."""
    log = get_logger("taskhook.test")
    try:
        configure_logging("json", "info")
        log.debug("hidden")
        log.info("first", n=1)
        configure_logging("console", "debug")
        log.debug("shown", n=2)
        configure_logging("json", "warning")
        log.info("hidden again")
        log.warning("third", secret="s3")
        lines = capsys.readouterr().err.splitlines()
    finally:
        structlog.reset_defaults()
    assert len(lines) == 3
    assert json.loads(lines[0])["event"] == "first"
    assert "shown" in lines[1]
    assert "n=2" in lines[1]
    assert not lines[1].startswith("{")
    assert json.loads(lines[2])["secret"] == REDACTED


def test_callback_tokens_are_cut_from_logged_paths() -> None:
    assert loggable_path("/callbacks/simulator/eyJ0YXNrIjoxfQ.abc") == (
        "/callbacks/simulator/[redacted]"
    )
    assert loggable_path("/v1/tasks") == "/v1/tasks"


@pytest.mark.usefixtures("json_logs")
async def test_request_lines_carry_request_id_and_no_key(
    client: httpx.AsyncClient, caller: Caller, capsys: pytest.CaptureFixture[str]
) -> None:
    created = await client.post(
        "/v1/tasks",
        headers={**caller.headers, "X-Request-Id": "trace-123"},
        json={"prompt": "a lighthouse at dusk", "model": "nano-banana"},
    )
    assert created.status_code == 202
    assert created.headers["x-request-id"] == "trace-123"
    forged = "thk_0123456789ab_" + "B" * 43
    refused = await client.get("/v1/account", headers={"Authorization": f"Bearer {forged}"})
    assert refused.status_code == 401
    generated = refused.headers["x-request-id"]
    assert generated.startswith("req_")

    err = capsys.readouterr().err
    assert caller.key not in err
    assert forged not in err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    access = [line for line in lines if line["event"] == "request"]
    assert [(a["request_id"], a["status"]) for a in access] == [
        ("trace-123", 202),
        (generated, 401),
    ]
    assert access[0]["account_id"] == caller.account_id
    assert all(line["level"] for line in lines)


@pytest.mark.usefixtures("json_logs")
async def test_a_callback_is_one_access_line_with_its_outcome_and_no_token(
    h: Harness, caller: Caller, capsys: pytest.CaptureFixture[str]
) -> None:
    task = await h.submitted_task(caller)
    path = await h.path(task["id"])
    capsys.readouterr()
    answered = await h.deliver(task["id"], success_body())
    assert answered.status_code == 200, answered.text

    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    # (the test's own httpx client logs the URL it was given, token and all)
    lines = [line for line in lines if not line["event"].startswith("HTTP Request:")]
    assert path.rsplit("/", 1)[1] not in json.dumps(lines)
    assert [line["event"] for line in lines] == ["request"]
    access = lines[0]
    assert access["path"] == "/callbacks/simulator/[redacted]"
    assert (access["callback_id"], access["task_id"], access["outcome"]) == (
        answered.json()["id"],
        task["id"],
        "applied",
    )
    # what it did to the task: the line of its own this once was
    after = await h.get_task(caller, task["id"])
    assert (access["task_status"], access["sequence"]) == ("succeeded", after["sequence"])
