"""Kie callbacks: the HMAC over ``taskId.timestamp``, and the envelope → ``ProviderUpdate``.

Pure (no I/O): ``verify_callback`` and ``parse_callback`` take headers, bytes and the time. Every
bad input must end as ``SignatureInvalid`` (401) or ``CallbackInvalid`` (400), never anything else.
"""

from __future__ import annotations

import contextlib
import json

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.core.ledger import TaskStatus
from service.core.signing import SignatureInvalid
from service.providers.base import CallbackInvalid, ProviderConfig, ProviderUpdate
from service.providers.kie import KieProvider
from tests.providers.fakes.kie import callback_body, signed_headers
from tests.providers.support import API_KEY, make_task

KEY = "kie-webhook-hmac-key-0123"
NOW_MS = 1_700_000_000_000
NOW_S = NOW_MS // 1000
TASK = "kie_task_1"
URLS = ["https://tempfile.aiquickdraw.com/a.png", "http://cdn.example.com/b.jpg"]
SUCCESS = callback_body(TASK, "success", resultJson=json.dumps({"resultUrls": URLS}))


def provider(webhook_key: str | None = KEY) -> KieProvider:
    config = ProviderConfig("kie", "http://unused", api_key=API_KEY, webhook_key=webhook_key)
    # never used for I/O here; a client is part of the constructor all the same
    return KieProvider(config, httpx.AsyncClient())


KIE = provider()


# -- verify_callback ------------------------------------------------------------------------


def test_a_valid_signature_passes() -> None:
    KIE.verify_callback(signed_headers(KEY, TASK, NOW_S), SUCCESS, NOW_MS)


def test_a_millisecond_timestamp_passes() -> None:
    KIE.verify_callback(signed_headers(KEY, TASK, NOW_MS), SUCCESS, NOW_MS)


def test_the_edges_of_the_window_pass() -> None:
    for stamp in (NOW_S - 300, NOW_S + 300):
        KIE.verify_callback(signed_headers(KEY, TASK, stamp), SUCCESS, NOW_MS)


@pytest.mark.parametrize("stamp", [NOW_S - 301, NOW_S + 301, 0, (NOW_S - 3600) * 1000])
def test_a_stale_or_future_timestamp_fails(stamp: int) -> None:
    with pytest.raises(SignatureInvalid, match="window"):
        KIE.verify_callback(signed_headers(KEY, TASK, stamp), SUCCESS, NOW_MS)


def test_a_tampered_task_id_fails() -> None:
    headers = signed_headers(KEY, TASK, NOW_S)
    other = SUCCESS.replace(TASK.encode(), b"kie_task_2")
    with pytest.raises(SignatureInvalid, match="does not match"):
        KIE.verify_callback(headers, other, NOW_MS)


def test_a_tampered_timestamp_fails() -> None:
    headers = signed_headers(KEY, TASK, NOW_S)
    headers["x-webhook-timestamp"] = str(NOW_S + 1)
    with pytest.raises(SignatureInvalid, match="does not match"):
        KIE.verify_callback(headers, SUCCESS, NOW_MS)


def test_a_wrong_key_fails() -> None:
    with pytest.raises(SignatureInvalid, match="does not match"):
        KIE.verify_callback(signed_headers("another-key", TASK, NOW_S), SUCCESS, NOW_MS)


def test_the_body_beyond_the_task_id_is_not_covered() -> None:
    """Why kie confirms callbacks: the same headers verify a different claim."""
    headers = signed_headers(KEY, TASK, NOW_S)
    KIE.verify_callback(headers, callback_body(TASK, "fail", failMsg="forged"), NOW_MS)
    assert KIE.confirms_callbacks


@pytest.mark.parametrize("missing", ["x-webhook-signature", "x-webhook-timestamp"])
def test_a_missing_header_fails(missing: str) -> None:
    headers = signed_headers(KEY, TASK, NOW_S)
    del headers[missing]
    with pytest.raises(SignatureInvalid, match="Missing"):
        KIE.verify_callback(headers, SUCCESS, NOW_MS)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("x-webhook-timestamp", "yesterday"),
        ("x-webhook-timestamp", "-1700000000"),
        ("x-webhook-timestamp", "1.7e9"),
        ("x-webhook-timestamp", "\u0661\u0667" + "\u0660" * 8),  # isdigit() but not ASCII
        ("x-webhook-timestamp", "9" * 40),
        ("x-webhook-signature", "!!!not-base64!!!"),
        ("x-webhook-signature", "v1,abc"),
        ("x-webhook-signature", "é" * 44),
        ("x-webhook-signature", "\x00"),
    ],
)
def test_a_garbage_header_fails(name: str, value: str) -> None:
    headers = signed_headers(KEY, TASK, NOW_S)
    headers[name] = value
    with pytest.raises(SignatureInvalid):
        KIE.verify_callback(headers, SUCCESS, NOW_MS)


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe\x00garbage",
        '{"data": {"taskId": "kie_task_1"}}'.encode("utf-16"),
        b"not json at all",
        b"[1, 2, 3]",
        b'{"code": 200}',
        b'{"data": "kie_task_1"}',
        b'{"data": {"taskId": 42}}',
        b"[" * 100_000,
    ],
)
def test_a_signed_but_unreadable_body_is_invalid(body: bytes) -> None:
    with pytest.raises(CallbackInvalid):
        KIE.verify_callback(signed_headers(KEY, TASK, NOW_S), body, NOW_MS)


def test_headers_are_checked_before_the_body() -> None:
    with pytest.raises(SignatureInvalid):
        KIE.verify_callback({}, b"\xff garbage", NOW_MS)


def test_without_a_key_anything_passes_and_is_confirmed_later() -> None:
    provider(None).verify_callback({}, b"\xff garbage", NOW_MS)


@given(
    headers=st.dictionaries(
        st.sampled_from(["x-webhook-signature", "x-webhook-timestamp", "content-type"]),
        st.text(max_size=60),
    ),
    body=st.one_of(st.binary(max_size=200), st.just(SUCCESS)),
)
def test_nothing_but_the_two_errors_escapes_verification(
    headers: dict[str, str], body: bytes
) -> None:
    with contextlib.suppress(SignatureInvalid, CallbackInvalid):
        KIE.verify_callback(headers, body, NOW_MS)


# -- parse_callback -------------------------------------------------------------------------


def test_a_success_carries_the_result_urls() -> None:
    assert KIE.parse_callback(SUCCESS) == ProviderUpdate(
        TASK, TaskStatus.SUCCEEDED, result_urls=tuple(URLS)
    )


def test_a_failure_is_readable() -> None:
    body = callback_body(TASK, "fail", failCode="500", failMsg="Internal error, please retry")
    update = KIE.parse_callback(body)
    assert update.status is TaskStatus.FAILED
    assert update.failure is not None
    assert update.failure.code == "provider_failed"
    assert update.failure.message == (
        "kie failed the task: Internal error, please retry (failCode 500)"
    )


def test_a_failure_without_details() -> None:
    update = KIE.parse_callback(callback_body(TASK, "fail", failCode=None, failMsg=None))
    assert update.failure is not None
    assert update.failure.message == "kie failed the task."


def test_a_failure_message_never_carries_our_keys() -> None:
    body = callback_body(TASK, "fail", failMsg=f"bad key {API_KEY} / {KEY}")
    update = KIE.parse_callback(body)
    assert update.failure is not None
    assert API_KEY not in update.failure.message
    assert KEY not in update.failure.message


def test_generating_carries_progress() -> None:
    update = KIE.parse_callback(callback_body(TASK, "generating", progress=55))
    assert update == ProviderUpdate(TASK, TaskStatus.RUNNING, progress=55)
    update = KIE.parse_callback(callback_body(TASK, "generating"))
    assert update == ProviderUpdate(TASK, TaskStatus.RUNNING)


@pytest.mark.parametrize("state", ["waiting", "queuing"])
def test_waiting_is_submitted(state: str) -> None:
    assert KIE.parse_callback(callback_body(TASK, state)).status is TaskStatus.SUBMITTED


@pytest.mark.parametrize(
    "result_json",
    [
        None,
        "",
        {"resultUrls": URLS},  # an object, not a JSON string
        "not json",
        '["https://a.example.com/x.png"]',
        '{"resultUrls": "https://a.example.com/x.png"}',
        '{"resultUrls": [null]}',
        '{"resultUrls": [42]}',
        '{"resultUrls": ["ftp://a.example.com/x.png"]}',
        '{"resultUrls": ["javascript:alert(1)"]}',
        '{"resultUrls": ["https://"]}',
        '{"resultUrls": ["https://a.example.com/x y.png"]}',
        '{"resultUrls": ["https://a.example.com/ok.png", "/relative.png"]}',
        '{"urls": ["https://a.example.com/x.png"]}',
        "[" * 100_000,
    ],
)
def test_result_json_edge_cases_are_invalid(result_json: object) -> None:
    with pytest.raises(CallbackInvalid):
        KIE.parse_callback(callback_body(TASK, "success", resultJson=result_json))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xfe",
        b"null",
        b'"a string"',
        b'{"code": 200, "msg": "success"}',
        b'{"data": []}',
        json.dumps({"data": {"state": "success"}}).encode(),
        json.dumps({"data": {"taskId": "", "state": "success"}}).encode(),
        json.dumps({"data": {"taskId": TASK}}).encode(),
        json.dumps({"data": {"taskId": TASK, "state": "exploded"}}).encode(),
        json.dumps({"data": {"taskId": TASK, "state": ["success"]}}).encode(),
    ],
)
def test_unusable_envelopes_are_invalid(body: bytes) -> None:
    with pytest.raises(CallbackInvalid):
        KIE.parse_callback(body)


@given(st.binary(max_size=300))
def test_parsing_never_raises_anything_else(body: bytes) -> None:
    with contextlib.suppress(CallbackInvalid):
        KIE.parse_callback(body)


def test_results_get_their_dimensions_from_the_task() -> None:
    task = make_task(aspect_ratio="16:9", resolution="2k", output_format="jpeg")
    change = KIE.parse_callback(SUCCESS).change_for(task)
    assert change.status is TaskStatus.SUCCEEDED
    assert change.provider_task_id == TASK
    assert [(r.url, r.content_type, r.width, r.height) for r in change.results] == [
        (URLS[0], "image/jpeg", 2048, 1152),
        (URLS[1], "image/jpeg", 2048, 1152),
    ]


def test_a_failure_becomes_a_failed_change() -> None:
    change = KIE.parse_callback(callback_body(TASK, "fail", failMsg="nope")).change_for(make_task())
    assert (change.status, change.results) == (TaskStatus.FAILED, ())
    assert change.failure is not None
    assert change.failure.code == "provider_failed"
