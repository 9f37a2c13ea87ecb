"""The README's path, for real: ``./scripts/serve`` on a loopback port, the CLI for an account
and a key, then a task submitted and read back over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.settings import PROJECT_ROOT


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKHOOK")}
    env.update(
        PORT=str(port),
        TASKHOOK_DATA_DIR=str(data_dir),
        TASKHOOK_CONFIG=str(PROJECT_ROOT / "config" / "dev.toml"),
    )
    return env


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "service", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    port = _free_port()
    env = _env(tmp_path / "data", port)
    proc = subprocess.Popen(
        [str(PROJECT_ROOT / "scripts" / "serve")],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"serve did not come up: {proc.stderr.read()!r}")  # type: ignore[union-attr]
        time.sleep(0.1)
    try:
        yield base, env
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


def test_serve_cli_submit_and_read_back(served: tuple[str, dict[str, str]]) -> None:
    base, env = served
    account_id = _cli(env, "accounts", "create", "walkthrough", "--credits", "100")
    assert account_id.startswith("acct_")
    key = _cli(env, "keys", "create", "--account", account_id)
    assert key.startswith("thk_")
    auth = {"Authorization": f"Bearer {key}"}

    with httpx.Client(base_url=base, headers=auth, timeout=10) as http:
        assert http.get("/readyz").json()["status"] == "ok"
        created = http.post(
            "/v1/tasks",
            json={
                "prompt": "a paper boat on a pond",
                "model": "nano-banana-2",
                "type": "edit",
                "images": ["https://example.com/boat.png"],
            },
        )
        assert created.status_code == 202, created.text
        task = created.json()
        assert task["cost_credits"] == 24  # nano-banana-2 edit at 1k, config/pricing.toml
        deadline = time.monotonic() + 20
        while (fetched := http.get(f"/v1/tasks/{task['id']}").json())["status"] != "succeeded":
            assert fetched["status"] != "failed", fetched
            assert time.monotonic() < deadline, fetched
            time.sleep(0.1)
        assert fetched["id"] == task["id"]
        image = http.get(fetched["results"][0]["url"])
        assert image.headers["content-type"] == "image/png"
        assert image.content.startswith(b"\x89PNG\r\n")
        assert http.get("/v1/account").json()["balance_credits"] == 100 - 24

    assert _cli(env, "credits", "grant", account_id, "50").endswith("+50")
    with httpx.Client(base_url=base, headers=auth, timeout=10) as http:
        assert http.get("/v1/account").json()["balance_credits"] == 126


def test_cli_reports_bad_config_without_traceback(tmp_path: Path) -> None:
    env = _env(tmp_path, 0)
    env["PORT"] = "not-a-port"
    done = subprocess.run(
        [sys.executable, "-m", "service", "db", "migrate"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "service.port (from PORT)" in done.stderr
    assert "Traceback" not in done.stderr
