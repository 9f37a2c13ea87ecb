"""The shared error mapping, ``Retry-After`` parsing and message hygiene (pure parts of http.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from service.providers.base import ProviderConfig, ProviderRejected, ProviderRetryable
from service.providers.http import (
    MAX_BODY,
    MAX_MESSAGE,
    STANDARD,
    StatusPolicy,
    call,
    check_body_code,
    error_for_status,
    is_http_url,
    is_task_id,
    parse_retry_after,
    progress_of,
    provider_message,
    readable,
)
from tests.servers import serve_app

CONFIG = ProviderConfig("acme", "http://unused", api_key="sk-secret-key", webhook_key="hmac-key")
NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (400, False), (401, False), (402, False), (403, False), (404, False), (409, False),
        (410, False), (413, False), (422, False), (451, False), (455, False),
        (408, True), (429, True),
        (500, True), (502, True), (503, True), (504, True), (505, True), (599, True),
        (501, False),
        (301, True), (302, True), (304, True),
    ],
)  # fmt: skip
def test_the_standard_classification(status: int, retryable: bool) -> None:
    assert STANDARD.is_retryable(status) is retryable


def test_a_policy_reclassifies_only_its_codes() -> None:
    policy = StatusPolicy(retryable=frozenset({455}), rejected=frozenset({505}))
    assert policy.is_retryable(455)
    assert not policy.is_retryable(505)
    assert policy.is_retryable(503)
    assert not policy.is_retryable(422)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "provider_bad_request"),
        (401, "provider_unauthorized"),
        (403, "provider_unauthorized"),
        (402, "provider_insufficient_credits"),
        (404, "provider_not_found"),
        (422, "provider_rejected"),
        (409, "provider_rejected"),
        (501, "provider_failed"),
    ],
)
def test_rejection_codes(status: int, code: str) -> None:
    error = error_for_status(CONFIG, status, "why not", {})
    assert isinstance(error, ProviderRejected)
    assert error.failure.code == code
    assert error.failure.message.startswith(f"acme refused the request (HTTP {status} ")
    assert error.failure.message.endswith(": why not")


def test_a_retryable_error_carries_retry_after() -> None:
    error = error_for_status(CONFIG, 429, None, {"retry-after": "30"})
    assert isinstance(error, ProviderRetryable)
    assert error.retry_after_s == 30.0
    assert error.message == "acme could not take the request now (HTTP 429 Too Many Requests)"


def test_an_unknown_status_still_reads() -> None:
    error = error_for_status(CONFIG, 499, None, {})
    assert isinstance(error, ProviderRejected)
    assert "(HTTP 499)" in error.failure.message


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        (format_datetime(datetime.fromtimestamp(NOW + 90, tz=UTC), usegmt=True), 90.0),
        (format_datetime(datetime.fromtimestamp(NOW - 90, tz=UTC), usegmt=True), 0.0),
        (None, None),
        ("", None),
        ("-5", None),
        ("9" * 400, None),
        ("1.5", None),
        ("soon", None),
        ("٣", None),
        ("Wed, 21 Oct 2015 07:28:00", None),  # no zone: not an HTTP-date
        ("Wed, 99 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


@given(st.text(max_size=80))
def test_parse_retry_after_never_raises(value: str) -> None:
    result = parse_retry_after(value, NOW)
    assert result is None or result >= 0


def test_readable_scrubs_secrets_collapses_space_and_cuts() -> None:
    text = readable(
        "key sk-secret-key\n\tand  hmac-key " + "x" * 1000, ("sk-secret-key", "hmac-key")
    )
    assert "sk-secret-key" not in text
    assert "hmac-key" not in text
    assert text.startswith("key [redacted] and [redacted] xxx")
    assert len(text) == MAX_MESSAGE
    assert text.endswith("…")


def test_error_messages_never_carry_the_keys() -> None:
    error = error_for_status(CONFIG, 401, "sk-secret-key is not valid; hmac-key neither", {})
    assert isinstance(error, ProviderRejected)
    assert "sk-secret-key" not in error.failure.message
    assert "hmac-key" not in error.failure.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"msg": "kie says"}, "kie says"),
        ({"message": "banana2 says"}, "banana2 says"),
        ({"error": "nbp says"}, "nbp says"),
        ({"error": {"message": "nested"}}, "nested"),
        ({"msg": "  ", "message": "second"}, "second"),
        ({"msg": 42}, None),
        ([1, 2], None),
        (None, None),
    ],
)
def test_provider_message(body: object, message: str | None) -> None:
    assert provider_message(body) == message


@pytest.mark.parametrize("code", [200, "200", 201, None])
def test_success_codes_pass(code: object) -> None:
    check_body_code(CONFIG, {"code": code}, {})


@pytest.mark.parametrize("code", [True, "abc", 99, 1000, 2.5, [200]])
def test_a_nonsense_code_is_the_provider_misbehaving(code: object) -> None:
    with pytest.raises(ProviderRetryable, match="unusable answer"):
        check_body_code(CONFIG, {"code": code}, {})


def test_a_body_code_maps_like_a_status() -> None:
    with pytest.raises(ProviderRejected) as caught:
        check_body_code(CONFIG, {"code": "402", "msg": "top up"}, {})
    assert caught.value.failure.code == "provider_insufficient_credits"
    with pytest.raises(ProviderRetryable) as retry:
        check_body_code(CONFIG, {"code": 429}, {"retry-after": "4"})
    assert retry.value.retry_after_s == 4.0


@pytest.mark.parametrize(
    ("value", "progress"),
    [(0, 0), (55, 55), (100, 100), (42.7, 42), ("64", 64), ("64%", 64), (101, None),
     (-1, None), (True, None), ("x", None), (None, None), (float("inf"), None), ([5], None)],
)  # fmt: skip
def test_progress_of(value: object, progress: int | None) -> None:
    assert progress_of(value) == progress


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("https://cdn.example.com/a.png", True),
        ("http://127.0.0.1:8000/simulator/images/x/0.png", True),
        ("ftp://cdn.example.com/a.png", False),
        ("//cdn.example.com/a.png", False),
        ("https://", False),
        ("https://a b/c", False),
        ("https://cdn.example.com/\n", False),
        ("https://[::1", False),
        ("", False),
        (None, False),
        ("https://e.com/" + "a" * 5000, False),
    ],
)
def test_is_http_url(value: object, ok: bool) -> None:
    assert is_http_url(value) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [("kie_1", True), ("", False), (" x", False), ("x\n", False), ("a" * 201, False), (7, False)],
)
def test_is_task_id(value: object, ok: bool) -> None:
    assert is_task_id(value) is ok


# -- call() against misbehaving servers -----------------------------------------------------


async def _dribble(_request: Request) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(20):
            await asyncio.sleep(0.05)
            yield b" "
        yield b"{}"

    return StreamingResponse(body(), media_type="application/json")


async def _huge(_request: Request) -> Response:
    return Response(b'{"pad": "' + b"x" * (MAX_BODY + 10) + b'"}', media_type="application/json")


async def test_the_deadline_covers_the_whole_exchange() -> None:
    app = Starlette(routes=[Route("/dribble", _dribble), Route("/huge", _huge)])
    async with serve_app(app) as base, httpx.AsyncClient(trust_env=False) as client:
        config = ProviderConfig("acme", base, timeout_s=0.3)
        started = time.monotonic()
        with pytest.raises(ProviderRetryable, match=r"did not answer within 0\.3 s"):
            await call(client, config, "GET", "/dribble")
        assert time.monotonic() - started < 0.9
        with pytest.raises(ProviderRetryable, match="unusable answer"):
            await call(client, replace(config, timeout_s=5.0), "GET", "/huge")


async def test_a_base_url_httpx_refuses_is_retryable_not_a_crash() -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        for base in ("ftp://example.com", "http://exa mple.com:99999"):
            with pytest.raises(ProviderRetryable, match="Could not reach acme"):
                await call(client, ProviderConfig("acme", base), "GET", "/x")
