"""The simulator under the production defaults (``config/default.toml``), mounted by taskhook.

Probing the running service found it on in production: ``createTask`` served to anyone, and its
callbacks posted to whatever ``callBackUrl`` said — loopback, private ranges, the metadata
address. Now it is off there; switched on, it wants a key and calls back only where deliveries
may go (``[delivery] allowed_networks``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from service.app import create_app
from service.errors import ConfigError
from service.settings import PROJECT_ROOT, Settings, load_settings
from tests.conftest import SECRET
from tests.servers import bind_loopback
from tests.simulator.conftest import MODULE_LOOP, Host, Receiver

pytestmark = MODULE_LOOP

PRODUCTION = str(PROJECT_ROOT / "config" / "default.toml")
CREATE = "/simulator/api/v1/jobs/createTask"
INFO = "/simulator/api/v1/jobs/recordInfo"
#: the shape of a minted callback URL's last segment: a credential, never to be logged
TOKEN = "eyJ0IjoidGFza18xIn0.Zm9yZ2VkLXRva2Vu"


def production(data_dir: Path, **extra: str) -> Settings:
    return load_settings(
        {
            "TASKHOOK_CONFIG": PRODUCTION,
            "TASKHOOK_DATA_DIR": str(data_dir),
            "TASKHOOK_SECRET_KEY": SECRET,
            "TASKHOOK_LOG_LEVEL": "warning",
            "TASKHOOK__SIMULATOR__LATENCY_MS": "50",
            **extra,
        }
    )


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app: Starlette = create_app(settings, run_workers=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


def job(callback: str | None = None, prompt: str = "a red fox") -> dict[str, Any]:
    body: dict[str, Any] = {"model": "nano-banana", "input": {"prompt": prompt}}
    if callback is not None:
        body["callBackUrl"] = callback
    return body


async def hook(host: Host) -> Receiver:
    """A receiver at a path shaped like taskhook's own callback URLs."""
    path = host.unique("hook") + f"/callbacks/simulator/{TOKEN}"
    receiver = Receiver(url=host.base + path)
    host.add(Route(path, receiver.endpoint, methods=["POST"]))
    return receiver


def authorized(settings: Settings) -> dict[str, str]:
    key = settings.simulator.api_key
    assert key is not None
    return {"Authorization": f"Bearer {key.reveal()}"}


async def test_the_production_defaults_serve_no_simulator(tmp_path: Path) -> None:
    settings = production(tmp_path, TASKHOOK_KIE_BASE_URL="http://127.0.0.1:9")
    assert not settings.simulator.enabled
    async with running(settings) as client:
        assert (await client.post(CREATE, json=job())).status_code == 404
        assert (await client.get(INFO, params={"taskId": "sim_x"})).status_code == 404
        openapi = (await client.get("/openapi.json")).json()
        assert "simulator" not in json.dumps(openapi["components"])


async def test_the_default_provider_is_the_first_one_configured(tmp_path: Path) -> None:
    settings = production(
        tmp_path,
        TASKHOOK_BANANA2_BASE_URL="http://127.0.0.1:9",
        TASKHOOK_KIE_BASE_URL="http://127.0.0.1:9",
    )
    app = create_app(settings, run_workers=False)
    async with app.router.lifespan_context(app):
        assert app.state.services.policy.tasks.default_provider == "kie"


async def test_with_no_provider_configured_start_up_says_what_to_set(tmp_path: Path) -> None:
    settings = production(tmp_path)
    with pytest.raises(ConfigError) as caught:
        create_app(settings, run_workers=False)
    message = caught.value.message
    assert "TASKHOOK_KIE_BASE_URL" in message
    assert "TASKHOOK__SIMULATOR__ENABLED" in message


async def test_switched_on_in_production_it_wants_the_key(tmp_path: Path, host: Host) -> None:
    settings = production(tmp_path, TASKHOOK__SIMULATOR__ENABLED="true")
    receiver = await hook(host)
    async with running(settings) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            created = await client.post(CREATE, json=job(receiver.url), headers=headers)
            assert created.status_code == 401
            info = await client.get(INFO, params={"taskId": "sim_x"}, headers=headers)
            assert info.status_code == 401
        created = await client.post(CREATE, json=job(), headers=authorized(settings))
        assert created.status_code == 200
        task_id = created.json()["data"]["taskId"]
        assert (await client.get(INFO, params={"taskId": task_id})).status_code == 401
        info = await client.get(INFO, params={"taskId": task_id}, headers=authorized(settings))
        assert info.status_code == 200
    assert receiver.calls == []


@pytest.mark.usefixtures("json_logs")
@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/iam",
        "http://10.0.0.1/hook",
        "http://[::1]:9/hook",
        "http://localhost:9/hook",
    ],
)
async def test_callbacks_to_non_public_targets_are_refused_once_and_logged(
    tmp_path: Path, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = production(tmp_path, TASKHOOK__SIMULATOR__ENABLED="true")
    url = f"{target}/callbacks/simulator/{TOKEN}"
    async with running(settings) as client:
        created = await client.post(CREATE, json=job(url), headers=authorized(settings))
        assert created.status_code == 200
        task_id = created.json()["data"]["taskId"]
        await asyncio.sleep(0.4)
    err = capsys.readouterr().err
    assert TOKEN not in err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    callbacks = [line for line in lines if line["event"].startswith("simulator.callback")]
    assert [line["event"] for line in callbacks] == ["simulator.callback_refused"]
    assert callbacks[0]["provider_task_id"] == task_id
    assert "non-public" in callbacks[0]["reason"] or "local" in callbacks[0]["reason"]


async def test_a_loopback_callback_is_refused_then_allowed_by_the_delivery_policy(
    tmp_path: Path, host: Host
) -> None:
    """The guard is the deliveries' own: refused under production's, sent once
    ``[delivery] allowed_networks`` takes loopback in."""
    refused = await hook(host)
    settings = production(tmp_path / "a", TASKHOOK__SIMULATOR__ENABLED="true")
    async with running(settings) as client:
        created = await client.post(CREATE, json=job(refused.url), headers=authorized(settings))
        assert created.status_code == 200
        await asyncio.sleep(0.4)
    assert refused.calls == []

    allowed = await hook(host)
    settings = production(
        tmp_path / "b",
        TASKHOOK__SIMULATOR__ENABLED="true",
        TASKHOOK__DELIVERY__ALLOWED_NETWORKS="127.0.0.0/8",
    )
    async with running(settings) as client:
        created = await client.post(CREATE, json=job(allowed.url), headers=authorized(settings))
        assert created.status_code == 200
        calls = await allowed.wait_for(2)
    assert [call.data["state"] for call in calls] == ["generating", "success"]


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKHOOK")}
    env.update(
        TASKHOOK_CONFIG=PRODUCTION,
        TASKHOOK_DATA_DIR=str(data_dir),
        TASKHOOK_SECRET_KEY=SECRET,
        TASKHOOK__SIMULATOR__LATENCY_MS="50",
        **extra,
    )
    return env


async def test_serve_without_a_provider_stops_with_the_message(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "service", "serve", "--port", "0"),
        env=_env(tmp_path),
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, raw = await asyncio.wait_for(proc.communicate(), timeout=60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    err = raw.decode()
    assert proc.returncode == 2
    assert "configuration error: no provider is enabled" in err
    assert "TASKHOOK_KIE_BASE_URL" in err
    assert "Traceback" not in err


async def test_the_standalone_simulator_in_production_wants_the_key_and_guards_callbacks(
    tmp_path: Path, host: Host
) -> None:
    """``python -m service simulator`` (what the soak runs beside web and worker) under the
    production config: the key web and worker derive, and the delivery policy."""
    sock = bind_loopback()
    port = sock.getsockname()[1]
    sock.close()
    env = _env(tmp_path)
    key = authorized(load_settings(env))
    receiver = await hook(host)
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "service", "simulator", "--port", str(port)),
        env=env,
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(300):
                try:
                    await client.get("/api/v1/jobs/recordInfo")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            path = "/api/v1/jobs/createTask"
            assert (await client.post(path, json=job(receiver.url))).status_code == 401
            created = await client.post(path, json=job(receiver.url), headers=key)
            assert created.status_code == 200
            await asyncio.sleep(0.5)
    finally:
        proc.terminate()
        _, raw = await asyncio.wait_for(proc.communicate(), timeout=30)
    err = raw.decode()
    assert receiver.calls == []
    assert "simulator.callback_refused" in err
    assert TOKEN not in err
