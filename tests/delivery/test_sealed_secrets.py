"""Endpoint secrets at rest, end to end: the service on a real port with its delivery worker, a
real receiver, the real database file read byte by byte, and the ``taskhook`` CLI as a
subprocess. Secrets never reach the file (nor its WAL), deliveries still verify with the
``standardwebhooks`` package through a rotation of the secret and of the secret key, and a
database whose secrets the configured keys cannot open is refused, clearly, at start-up."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook
from starlette.applications import Starlette

from service.app import create_app
from service.core.clock import system_clock
from service.core.endpoints import ping_event
from service.core.ids import new_id
from service.core.secretbox import SealedSecretError, SecretBox, key_id_of
from service.core.signing import decode_secret
from service.outbox import deliver
from service.settings import PROJECT_ROOT, load_settings
from service.store.base import Store
from service.store.sqlite import SqliteStore
from service.usecases import create_account, create_api_key
from tests import backends
from tests.conftest import SECRET, settings_env
from tests.delivery.receiver import Receiver
from tests.factories import make_endpoint
from tests.servers import bind_loopback, serve_app

KEY_A = "secret-key-a-0123456789abcdefghijklmnopqrstuvwxyz"
KEY_B = "secret-key-b-0123456789abcdefghijklmnopqrstuvwxyz"
KEY_C = "secret-key-c-0123456789abcdefghijklmnopqrstuvwxyz"


def keys_env(current: str, *previous: str) -> dict[str, str]:
    return {"TASKHOOK_SECRET_KEY": current, "TASKHOOK_SECRET_KEY_PREVIOUS": ",".join(previous)}


@dataclass
class Service:
    app: Starlette
    http: httpx.AsyncClient
    receiver: Receiver
    hooks: str

    @property
    def store(self) -> Store:
        store: Store = self.app.state.services.store
        return store

    async def endpoint(self, path: str, **body: Any) -> dict[str, Any]:
        created = await self.http.post("/v1/endpoints", json={"url": self.hooks + path, **body})
        assert created.status_code == 201, created.text
        endpoint: dict[str, Any] = created.json()
        return endpoint

    async def rotate(self, endpoint_id: str) -> str:
        rotated = await self.http.post(f"/v1/endpoints/{endpoint_id}/rotate-secret")
        assert rotated.status_code == 200, rotated.text
        secret: str = rotated.json()["secret"]
        return secret

    async def ping(self, endpoint_id: str, path: str) -> dict[str, str]:
        """Send a test ping through the worker; the headers it arrived with."""
        seen = len(self.receiver.at(path))
        sent = await self.http.post(f"/v1/endpoints/{endpoint_id}/test")
        assert sent.status_code == 202, sent.text
        for _ in range(200):
            if len(self.receiver.at(path)) > seen:
                got = self.receiver.at(path)[-1]
                assert got.body.startswith(b'{"type":"ping"')
                return got.headers
            await asyncio.sleep(0.025)
        raise AssertionError(f"no ping reached {path}")

    def verify(self, path: str, *secrets: str) -> None:
        """The last delivery to ``path`` verifies with every one of ``secrets``."""
        got = self.receiver.at(path)[-1]
        for secret in secrets:
            Webhook(secret).verify(got.body, got.headers)


@asynccontextmanager
async def running(
    data_dir: Path, receiver: Receiver, hooks: str, **env: str
) -> AsyncIterator[Service]:
    """The service (API and workers) on ``data_dir``, with an API key made on first use."""
    sock = bind_loopback()
    settings = load_settings(
        settings_env(
            data_dir, PORT=str(sock.getsockname()[1]), TASKHOOK__WORKERS__IDLE_POLL_MS="50", **env
        )
    )
    app = create_app(settings)
    async with serve_app(app, sock=sock, lifespan="on") as base:
        key_file = data_dir / "test_api_key"
        if not key_file.exists():
            account = await create_account(app.state.services.store, system_clock, "sub", 0)
            _, raw = await create_api_key(app.state.services.store, system_clock, account.id)
            key_file.write_text(raw)
        auth = {"Authorization": f"Bearer {key_file.read_text()}"}
        async with httpx.AsyncClient(base_url=base, headers=auth, timeout=10) as http:
            yield Service(app, http, receiver, hooks)


@pytest.fixture
async def hooks() -> AsyncIterator[tuple[Receiver, str]]:
    receiver = Receiver()
    async with serve_app(receiver.app()) as base:
        yield receiver, base


#: a whsec_ secret as text (0003's schema comment names the prefix alone, so that stays)
ANY_SECRET = re.compile(rb"whsec_[A-Za-z0-9+/]{8}")


def file_bytes(data_dir: Path) -> bytes:
    """The database file and its WAL, as they are on disk now; on PostgreSQL, every column
    of every row of the tables that could hold a secret, as text."""
    if backends.CURRENT.is_postgres:
        dumped = backends.run_sync(
            backends.rows(
                data_dir,
                "SELECT COALESCE(string_agg(row_to_json(e)::text, ''), '') FROM endpoints e",
            )
        )
        return str(dumped).encode()
    db = data_dir / "taskhook.db"
    return b"".join(p.read_bytes() for p in (db, db.with_name(db.name + "-wal")) if p.exists())


def traces(secret: str) -> list[bytes]:
    """Every form of ``secret`` that would give it away: the text, its base64, the key bytes."""
    key = decode_secret(secret)
    return [secret.encode(), base64.b64encode(key), key, key.hex().encode()]


def stored_values(data_dir: Path) -> list[str]:
    sql = "SELECT secret, previous_secret FROM endpoints"
    if backends.CURRENT.is_postgres:
        rows = backends.run_sync(backends.rows(data_dir, sql))
    else:
        with closing(sqlite3.connect(data_dir / "taskhook.db")) as conn:
            rows = conn.execute(sql).fetchall()
    return [v for row in rows for v in row if v is not None]


def taskhook(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("TASKHOOK")}
    full |= settings_env(data_dir, **env)
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        env=full, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


async def test_no_secret_reaches_the_database_file_and_deliveries_verify(
    tmp_path: Path, hooks: tuple[Receiver, str], capsys: pytest.CaptureFixture[str], json_logs: None
) -> None:
    receiver, base = hooks
    given = "whsec_" + base64.b64encode(bytes(range(7, 39))).decode()
    async with running(tmp_path, receiver, base) as service:
        generated = await service.endpoint("/gen")
        chosen = await service.endpoint("/given", secret=given)
        rotated_to = await service.rotate(generated["id"])
        await service.ping(generated["id"], "/gen")
        await service.ping(chosen["id"], "/given")
        secrets = [generated["secret"], rotated_to, given]

        # a rotation signs with both secrets while the overlap lasts
        service.verify("/gen", generated["secret"], rotated_to)
        service.verify("/given", given)
        while_running = file_bytes(tmp_path)
    after_close = file_bytes(tmp_path)

    assert chosen["secret"] == given
    for raw in (while_running, after_close):
        assert not ANY_SECRET.search(raw)
        for secret in secrets:
            for trace in traces(secret):
                assert trace not in raw
    values = stored_values(tmp_path)
    assert len(values) == 3  # two current secrets and the one rotated out
    assert {key_id_of(v) for v in values} == {SecretBox.from_keys(SECRET).current.key_id}
    logged = capsys.readouterr().err
    assert '"request"' in logged  # the service did log, at info
    for secret in secrets:
        assert secret not in logged
        assert base64.b64encode(decode_secret(secret)).decode() not in logged


async def test_a_new_secret_key_still_delivers_and_reencrypt_lets_the_old_one_go(
    tmp_path: Path, hooks: tuple[Receiver, str]
) -> None:
    receiver, base = hooks
    async with running(tmp_path, receiver, base, **keys_env(KEY_A)) as service:
        endpoint = await service.endpoint("/hook")
        newer = await service.rotate(endpoint["id"])
    both = (newer, endpoint["secret"])
    under_a = SecretBox.from_keys(KEY_A).current.key_id
    assert {key_id_of(v) for v in stored_values(tmp_path)} == {under_a}

    # The key changes; the old one is kept as previous: what it sealed still opens.
    async with running(tmp_path, receiver, base, **keys_env(KEY_B, KEY_A)) as service:
        await service.ping(endpoint["id"], "/hook")
        service.verify("/hook", *both)

    moved = taskhook(tmp_path, "secrets", "reencrypt", **keys_env(KEY_B, KEY_A))
    again = taskhook(tmp_path, "secrets", "reencrypt", **keys_env(KEY_B, KEY_A))

    under_b = SecretBox.from_keys(KEY_B).current.key_id
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout == f"2 stored secrets moved to the current key (key id {under_b})\n"
    assert again.stdout == f"0 stored secrets moved to the current key (key id {under_b})\n"
    assert {key_id_of(v) for v in stored_values(tmp_path)} == {under_b}
    for output in (moved.stdout + moved.stderr, again.stdout + again.stderr):
        assert not ANY_SECRET.search(output.encode())
    assert not ANY_SECRET.search(file_bytes(tmp_path))

    # The old key is gone from the configuration: everything still opens and signs.
    async with running(tmp_path, receiver, base, **keys_env(KEY_B)) as service:
        await service.ping(endpoint["id"], "/hook")
        service.verify("/hook", *both)


async def test_a_database_sealed_under_another_key_is_refused_at_start_up(
    tmp_path: Path, hooks: tuple[Receiver, str]
) -> None:
    receiver, base = hooks
    async with running(tmp_path, receiver, base, **keys_env(KEY_A)) as service:
        endpoint = await service.endpoint("/hook")
    sealed = stored_values(tmp_path)[0]
    app = create_app(load_settings(settings_env(tmp_path, **keys_env(KEY_B))))

    with pytest.raises(SealedSecretError) as refused:
        async with app.router.lifespan_context(app):
            pass
    cli = taskhook(tmp_path, "secrets", "reencrypt", **keys_env(KEY_B))

    message = refused.value.message
    assert message.startswith("1 stored endpoint secret(s) are sealed with a key that is not")
    assert SecretBox.from_keys(KEY_A).current.key_id in message
    assert "TASKHOOK_SECRET_KEY_PREVIOUS" in message
    assert cli.returncode == 1
    assert cli.stderr == f"taskhook: {message}\n"
    for text in (message, cli.stdout + cli.stderr):
        assert sealed.rsplit(":", 1)[1] not in text
        assert endpoint["secret"] not in text
        assert KEY_A not in text
    assert stored_values(tmp_path) == [sealed]  # nothing was changed


@pytest.mark.sqlite_only  # opens the SQLite file under a second key
async def test_a_secret_sealed_by_another_process_under_another_key_is_never_sent_unsigned(
    tmp_path: Path,
    hooks: tuple[Receiver, str],
    capsys: pytest.CaptureFixture[str],
    json_logs: None,
) -> None:
    # Serve and a worker with different keys (a misconfiguration): a row one wrote does not
    # open in the other. The API says so without the value; the worker sends nothing.
    receiver, base = hooks
    async with running(tmp_path, receiver, base, **keys_env(KEY_A)) as service:
        mine = await service.endpoint("/hook")
        found = await service.store.get_endpoint_by_id(mine["id"])
        assert found is not None
        made = make_endpoint(found.account_id, base + "/other")
        event = ping_event(new_id("evt", made.created_at), made, made.created_at)
        other = SqliteStore(tmp_path / "taskhook.db", secrets=SecretBox.from_keys(KEY_C))
        await other.db.open()  # not other.open(): it would refuse KEY_A's rows, rightly
        try:
            async with other.transaction() as tx:
                await tx.insert_endpoint(made)
                await tx.insert_event(event)
                await deliver(tx, event, [made], made.created_at)
        finally:
            await other.db.close()
        service.app.state.services.waker.wake_delivery()

        answer = await service.http.get(f"/v1/endpoints/{made.id}")
        await asyncio.sleep(0.3)  # several worker rounds (idle poll: 50 ms)
        pending = await service.http.get(f"/v1/events/{event.id}/deliveries")

    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == "sealed_secret_error"
    assert "not configured" in answer.json()["error"]["message"]
    assert "enc:v1:" not in answer.text
    assert made.secret not in answer.text
    assert receiver.at("/other") == []
    assert pending.status_code == 200, pending.text
    [delivery] = pending.json()["data"]
    assert (delivery["status"], delivery["attempts"]) == ("pending", 0)
    logged = capsys.readouterr().err
    assert '"workers.round_failed"' in logged  # the worker says why, every round
    assert SecretBox.from_keys(KEY_C).current.key_id in logged
    sealed = stored_values(tmp_path)
    for leak in (made.secret, mine["secret"], *(v.rsplit(":", 1)[1] for v in sealed)):
        assert leak not in logged
