"""Logs: JSON lines with a request id on each, and never a key, secret or token."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path

import httpx
import pytest
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.app import create_app
from service.core.clock import system_clock
from service.logs import REDACTED, configure_logging, get_logger, redact
from service.settings import load_settings
from service.usecases import create_account, create_api_key
from service.web.middleware import loggable_path
from tests.conftest import Caller, settings_env
from tests.servers import bind_loopback, serve_app
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
    assert path.rsplit("/", 1)[1] not in err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    # the test's own httpx client logs the URL it was given, token cut as in every line
    ours = [line for line in lines if not line["event"].startswith("HTTP Request:")]
    assert [line["event"] for line in ours] == ["request"]
    access = ours[0]
    assert access["path"] == "/callbacks/simulator/[redacted]"
    assert (access["callback_id"], access["task_id"], access["outcome"]) == (
        answered.json()["id"],
        task["id"],
        "applied",
    )
    # what it did to the task: the line of its own this once was
    after = await h.get_task(caller, task["id"])
    # (a success holds the task, running, until the mirror loop has kept its image)
    assert (access["task_status"], access["sequence"]) == ("running", after["sequence"])


TOKEN = "eyJ0YXNrIjoidGFza18xIn0.aGVsbG8tdG9rZW4"
_CALLBACK_PATHS = re.compile(r"/callbacks/[A-Za-z0-9_-]+/([^\s\"'?#/\\]*)")


def test_redact_cuts_callback_tokens_out_of_any_value() -> None:
    event = {
        "event": f"POST http://127.0.0.1:8000/callbacks/simulator/{TOKEN} done",
        "url": f"https://me.example/callbacks/kie/{TOKEN}?x=1",
        "note": f"see /callbacks/nanobanana2/{TOKEN}",
        "path": "/v1/callbacks/cb_01M8XJ4645K5N8SZVWKD59WZSN/replay",
    }
    out = redact(None, "info", event)
    assert TOKEN not in json.dumps(out)
    assert out["path"] == "/v1/callbacks/cb_01M8XJ4645K5N8SZVWKD59WZSN/replay"
    assert out["event"] == "POST http://127.0.0.1:8000/callbacks/simulator/[redacted] done"
    assert out["url"] == "https://me.example/callbacks/kie/[redacted]?x=1"


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_foreign_records_are_redacted_after_formatting(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A third-party logger's ``msg % args``, and its traceback, go through the same cuts."""
    try:
        configure_logging(fmt, "info")
        foreign = logging.getLogger("some.library")
        foreign.info("HTTP Request: %s %s", "POST", f"http://h/callbacks/simulator/{TOKEN}")
        try:
            raise RuntimeError(f"failed on /callbacks/kie/{TOKEN}")
        except RuntimeError:
            foreign.exception("request to %s failed", f"/callbacks/kie/{TOKEN}")
        err = capsys.readouterr().err
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    assert TOKEN not in err
    assert err.count("/callbacks/simulator/[redacted]") == 1
    assert err.count("/callbacks/kie/[redacted]") >= 2


@pytest.mark.usefixtures("json_logs")
async def test_httpx_request_lines_carry_no_callback_token(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def answer(request: Request) -> Response:
        return Response(status_code=204)

    app = Starlette(routes=[Route("/callbacks/{provider}/{token}", answer, methods=["POST"])])
    async with serve_app(app) as base, httpx.AsyncClient(base_url=base) as client:
        assert (await client.post(f"/callbacks/simulator/{TOKEN}")).status_code == 204
    err = capsys.readouterr().err
    assert "HTTP Request: POST" in err
    assert TOKEN not in err
    assert "/callbacks/simulator/[redacted]" in err


@pytest.mark.usefixtures("json_logs")
async def test_a_real_simulator_callback_leaves_no_token_in_the_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole loop, logged at info in production's format: taskhook submits to its own
    simulator, which calls back the minted URL; no line, ours or a library's, shows a token."""
    sock = bind_loopback()
    env = settings_env(
        tmp_path,
        PORT=str(sock.getsockname()[1]),
        TASKHOOK__SIMULATOR__LATENCY_MS="100",
        TASKHOOK__WORKERS__IDLE_POLL_MS="50",
    )
    app = create_app(load_settings(env))
    async with serve_app(app, sock=sock, lifespan="on") as base:
        store = app.state.services.store
        account = await create_account(store, system_clock, "logs", 100)
        _, key = await create_api_key(store, system_clock, account.id)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=base, headers=headers) as http:
            created = await http.post("/v1/tasks", json={"prompt": "a fox", "model": "nano-banana"})
            assert created.status_code == 202
            for _ in range(200):
                task = (await http.get(f"/v1/tasks/{created.json()['id']}")).json()
                if task["status"] == "succeeded":
                    break
                await asyncio.sleep(0.05)
            assert task["status"] == "succeeded"
    err = capsys.readouterr().err
    timeline = [line for line in err.splitlines() if "/callbacks/simulator/" in line]
    assert timeline  # the callbacks were logged (the access lines at least)
    assert set(_CALLBACK_PATHS.findall(err)) == {"[redacted]"}
