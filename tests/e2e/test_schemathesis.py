"""Schemathesis against the live service, as the operations issue asks: every route in
``/openapi.json`` fuzzed with ``--checks all`` and a valid key — no 5xx, no response that breaks
the schema, auth enforced, schema-valid requests accepted and invalid ones refused."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from pathlib import Path

from service.app import create_app
from service.core.clock import system_clock
from service.settings import load_settings
from service.usecases import create_account, create_api_key
from tests.conftest import settings_env
from tests.servers import bind_loopback, serve_app

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
CONFIG = Path(__file__).with_name("schemathesis.toml")


async def _public_resolver(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]


BUDGET_S = 45


async def test_the_api_holds_up_to_schemathesis(tmp_path: Path) -> None:
    sock = bind_loopback()
    settings = load_settings(
        settings_env(tmp_path, PORT=str(sock.getsockname()[1]), TASKHOOK_LOG_LEVEL="error")
    )
    app = create_app(settings, run_workers=False)
    # Endpoint URLs the fuzzer invents resolve to a public address, without asking DNS: a name
    # that did not resolve would be accepted too, but a real lookup per request (up to the 2 s
    # registration timeout where DNS is slow) would spend the budget, and answers would vary
    # with the machine. The SSRF guard itself is tested in tests/delivery.
    services = app.state.services
    app.state.services = replace(
        services, endpoints=replace(services.endpoints, resolve=_public_resolver)
    )
    async with serve_app(app, sock=sock, lifespan="on") as base:
        store = app.state.services.store
        account = await create_account(store, system_clock, "fuzz", 10**9)
        _, key = await create_api_key(store, system_clock, account.id)
        for attempt in (1, 2):
            returncode, report = await _run_schemathesis(base, key, tmp_path)
            # Schemathesis itself sometimes crashes generating a case (a CPython "AST
            # constructor recursion depth" SystemError, a tool bug, not a finding): then, and
            # only then, run it once more. Any check failure fails the test at once.
            tool_crash_only = "Runtime Error" in report and "❌ ST" not in report
            if returncode == 0 or not tool_crash_only or attempt == 2:
                break
    assert returncode == 0, report[-6000:]


async def _run_schemathesis(base: str, key: str, home: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS), "--config-file", str(CONFIG), "run", f"{base}/openapi.json",
        "--checks", "all",
        "--header", f"Authorization: Bearer {key}",
        "--max-time", str(BUDGET_S),
        # One worker: CPython 3.11 keeps ast's recursion depth per interpreter, not per thread,
        # so two workers parsing at once (hypothesis reads lambdas' source) now and then crash
        # with "AST constructor recursion depth mismatch". One generates as many cases here.
        "--workers", "1",
        "--seed", "20261121",
        "--suppress-health-check", "all",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={"PATH": str(SCHEMATHESIS.parent), "NO_COLOR": "1", "HOME": str(home)},
    )  # fmt: skip
    output, _ = await asyncio.wait_for(proc.communicate(), timeout=BUDGET_S + 120)
    return proc.returncode or 0, output.decode(errors="replace")
