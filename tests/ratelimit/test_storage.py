"""Where the counts live: with ``[api] rate_limit_storage = "redis://…"`` two app instances (two
processes, in production) share each key's budget; a Redis that cannot be reached lets requests
through and says so in the log; and the settings refuse what the library cannot count.

The Redis tests use the real server on 127.0.0.1:6379, each under a key prefix of its own that
is deleted afterwards; they are skipped, saying why, where no Redis answers.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio

from service.errors import ConfigError
from service.settings import load_settings
from tests.conftest import settings_env
from tests.ratelimit.helpers import RATELIMIT_HEADERS, limits_env, running
from tests.ratelimit.test_rate_limits import quota, spend

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own on the local Redis; its keys are deleted afterwards."""
    client = redis.asyncio.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await client.ping()
    except (redis.RedisError, OSError) as exc:
        await client.aclose()
        if os.environ.get("TASKHOOK_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis is required (TASKHOOK_REQUIRE_REDIS=1): {exc!r}")
        pytest.skip(f"no Redis at {REDIS_URL} ({exc!r}): the shared-storage tests need one")
    prefix = f"taskhook-test-{secrets.token_hex(6)}"
    try:
        yield prefix
    finally:
        async for key in client.scan_iter(match=f"{prefix}*"):
            await client.delete(key)
        await client.aclose()


async def keys_under(prefix: str) -> list[bytes]:
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        return [key async for key in client.scan_iter(match=f"{prefix}*")]
    finally:
        await client.aclose()


async def test_two_instances_on_one_redis_share_a_keys_budget(
    tmp_path: Path, redis_prefix: str
) -> None:
    env = limits_env(
        1,
        20,
        TASKHOOK__API__RATE_LIMIT_STORAGE=REDIS_URL,
        TASKHOOK__API__RATE_LIMIT_PREFIX=redis_prefix,
    )
    # One database file, as two web processes of one deployment have.
    async with running(tmp_path, env) as first, running(tmp_path, env) as second:
        who = await first.caller()
        answers = await spend(first.http, who, 12)
        assert [a.status_code for a in answers] == [200] * 12
        assert await keys_under(redis_prefix), "nothing was counted in Redis"

        # The other instance sees the same count: its first answer is the 13th request.
        seen = await second.http.get("/v1/account", headers=who.headers)
        assert seen.status_code == 200
        assert quota(seen)[1] <= 20 - 13
        rest = await spend(second.http, who, 12)
        assert rest[-1].status_code == 429
        assert len(rest) <= 20 - 13 + 2  # what was left, and one more at a window's edge
        again = await first.http.get("/v1/account", headers=who.headers)
        assert again.status_code == 429
        assert int(again.headers["retry-after"]) >= 1


async def test_in_memory_each_instance_counts_alone(tmp_path: Path) -> None:
    """The default: per process, as the README says (the contrast to the test above)."""
    env = limits_env(1, 5)
    async with running(tmp_path, env) as first, running(tmp_path, env) as second:
        who = await first.caller()
        assert (await spend(first.http, who, 7))[-1].status_code == 429
        fresh = await second.http.get("/v1/account", headers=who.headers)
        assert fresh.status_code == 200
        assert quota(fresh)[:2] == (5, 4)


@pytest.mark.usefixtures("json_logs")
async def test_an_unreachable_redis_lets_requests_through_and_logs_it_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = limits_env(1, 2, TASKHOOK__API__RATE_LIMIT_STORAGE="redis://127.0.0.1:1/0")
    async with running(tmp_path, env) as app:
        who = await app.caller()
        capsys.readouterr()
        for _ in range(5):  # past the burst: nothing could count them
            answer = await app.http.get("/v1/account", headers=who.headers)
            assert answer.status_code == 200
            assert not any(name in answer.headers for name in RATELIMIT_HEADERS)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if "{" in line]
    warnings = [line for line in lines if line.get("event") == "ratelimit.storage_failed"]
    assert len(warnings) == 1, lines
    assert warnings[0]["level"] == "warning"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (limits_env(100, 150), "api.rate_limit_burst: must be a whole multiple"),
        (limits_env(100, 50), "api.rate_limit_burst: must be a whole multiple"),
        (limits_env(1, 86401), "api.rate_limit_burst: at most a day"),
        (limits_env(-1, 10), "api.rate_limit (from TASKHOOK__API__RATE_LIMIT)"),
        ({"TASKHOOK__API__RATE_LIMIT_STORAGE": "memcached://x"}, "api.rate_limit_storage"),
        ({"TASKHOOK__API__RATE_LIMIT_PREFIX": "a b"}, "api.rate_limit_prefix"),
        ({"TASKHOOK__TASKS__MAX_IN_FLIGHT_PER_ACCOUNT": "x"}, "tasks.max_in_flight_per_account"),
    ],
)
def test_settings_refuse_limits_the_library_cannot_count(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(settings_env(tmp_path, **env))


def test_production_defaults_are_the_contracts(tmp_path: Path) -> None:
    settings = load_settings({"TASKHOOK_DATA_DIR": str(tmp_path), "TASKHOOK_SECRET_KEY": "k" * 40})
    api = settings.api
    assert (api.rate_limit, api.rate_limit_burst, api.rate_limit_window_seconds) == (100, 200, 2)
    assert api.rate_limit_storage == ""
    assert settings.tasks.max_in_flight_per_account == 200
