"""The pure endpoint rules: body validation, secrets, who receives what, which secrets sign."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.core.clock import fixed_clock
from service.core.endpoints import (
    DISABLED_GONE,
    DISABLED_MANUALLY,
    UNSET,
    Endpoint,
    EndpointPatch,
    apply_patch,
    check_secret,
    endpoint_object,
    generate_secret,
    parse_create,
    parse_patch,
    ping_event,
    recipients,
    rotate,
    signing_secrets,
    subscribes,
)
from service.core.events import EVENT_TYPES
from service.core.signing import decode_secret, encode_secret
from service.errors import ValidationFailed
from tests.factories import make_endpoint

NOW = 1_780_000_000_000
DAY_MS = 86_400_000


def endpoint(**changes: Any) -> Endpoint:
    fixed: dict[str, Any] = {
        "id": "ep_01JD0Q0000000000000000000A",
        "secret": encode_secret(b"k" * 32),
        **changes,
    }
    return make_endpoint(
        "acct_01JD0Q0000000000000000000A", "https://example.com/hook", now=NOW, **fixed
    )


def refused(body: object, parse: Any = parse_create) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        parse(body)
    assert caught.value.status_code == 422
    return caught.value


# --- create and patch bodies ------------------------------------------------------------------


def test_a_minimal_create_subscribes_to_everything() -> None:
    request = parse_create({"url": "https://example.com/hook"})

    assert request.url == "https://example.com/hook"
    assert request.description == ""
    assert request.event_types is None
    assert request.secret is None


def test_a_full_create_keeps_every_field() -> None:
    secret = encode_secret(b"s" * 24)
    request = parse_create(
        {
            "url": "http://127.0.0.1:9/hook?x=1",
            "description": "billing",
            "event_types": ["task.succeeded", "task.failed"],
            "secret": secret,
        }
    )

    assert request.event_types == ("task.succeeded", "task.failed")
    assert request.description == "billing"
    assert request.secret == secret


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], None),
        ("https://example.com", None),
        ({}, "url"),
        ({"url": None}, "url"),
        ({"url": 7}, "url"),
        ({"url": ""}, "url"),
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "example.com/hook"}, "url"),
        ({"url": "https://"}, "url"),
        ({"url": "https://exa mple.com/"}, "url"),
        ({"url": "https://example.com:99999/"}, "url"),
        ({"url": "https://example.com:port/"}, "url"),
        ({"url": "https://bücher.example/"}, "url"),
        ({"url": "https://example.com/" + "a" * 2029}, "url"),
        ({"url": "https://example.com", "description": 5}, "description"),
        ({"url": "https://example.com", "description": "d" * 501}, "description"),
        ({"url": "https://example.com", "event_types": []}, "event_types"),
        ({"url": "https://example.com", "event_types": "task.failed"}, "event_types"),
        ({"url": "https://example.com", "event_types": ["task.done"]}, "event_types"),
        ({"url": "https://example.com", "event_types": [1]}, "event_types"),
        ({"url": "https://example.com", "event_types": ["ping", "ping"]}, "event_types"),
        ({"url": "https://example.com", "secret": 12}, "secret"),
        ({"url": "https://example.com", "secret": "whsec_not base64!"}, "secret"),
        ({"url": "https://example.com", "enabled": False}, "enabled"),
        ({"url": "https://example.com", "colour": "red"}, "colour"),
    ],
)
def test_bad_create_bodies_name_the_field(body: object, field: str | None) -> None:
    assert refused(body).field == field


def test_limits_are_inclusive() -> None:
    url = "https://example.com/" + "a" * (2048 - len("https://example.com/"))
    assert parse_create({"url": url, "description": "d" * 500}).url == url


def test_unknown_fields_are_all_named() -> None:
    error = refused({"url": "https://example.com", "zeta": 1, "alpha": 2})

    assert error.field == "alpha"
    assert "'alpha'" in error.message
    assert "'zeta'" in error.message


def test_every_event_type_can_be_chosen() -> None:
    assert parse_create({"url": "https://e.com", "event_types": list(EVENT_TYPES)}).event_types


def test_a_patch_changes_only_what_it_names() -> None:
    assert parse_patch({}) == EndpointPatch()
    assert parse_patch({"event_types": None}).event_types is None
    assert parse_patch({"description": None}).description == ""
    patch = parse_patch({"url": "https://e.com/2", "enabled": False, "event_types": ["ping"]})
    assert patch == EndpointPatch(url="https://e.com/2", enabled=False, event_types=("ping",))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (None, None),
        ({"url": None}, "url"),
        ({"url": "mailto:a@b.c"}, "url"),
        ({"enabled": "yes"}, "enabled"),
        ({"enabled": None}, "enabled"),
        ({"enabled": 1}, "enabled"),
        ({"event_types": []}, "event_types"),
        ({"description": ["x"]}, "description"),
        ({"secret": encode_secret(b"s" * 32)}, "secret"),
        ({"id": "ep_x"}, "id"),
    ],
)
def test_bad_patch_bodies_name_the_field(body: object, field: str | None) -> None:
    assert refused(body, parse_patch).field == field


def test_patching_nothing_changes_nothing() -> None:
    before = endpoint()
    assert apply_patch(before, EndpointPatch(), NOW + 1) is before
    assert apply_patch(before, EndpointPatch(url=before.url, enabled=True), NOW + 1) is before


def test_patching_fields_stamps_updated_at() -> None:
    after = apply_patch(
        endpoint(),
        EndpointPatch(url="https://e.com/new", description="d", event_types=("task.failed",)),
        NOW + 5,
    )

    assert (after.url, after.description, after.event_types) == (
        "https://e.com/new",
        "d",
        ("task.failed",),
    )
    assert after.updated_at == NOW + 5
    assert apply_patch(after, EndpointPatch(event_types=None), NOW + 6).event_types is None
    assert apply_patch(after, EndpointPatch(event_types=UNSET), NOW + 6) is after


def test_disabling_records_why_and_re_enabling_starts_healthy() -> None:
    disabled = apply_patch(endpoint(failing_since=NOW - DAY_MS), EndpointPatch(enabled=False), NOW)
    assert (disabled.enabled, disabled.disabled_reason) == (False, DISABLED_MANUALLY)

    gone = endpoint(enabled=False, disabled_reason=DISABLED_GONE, failing_since=NOW - DAY_MS)
    enabled = apply_patch(gone, EndpointPatch(enabled=True), NOW)
    assert (enabled.enabled, enabled.disabled_reason, enabled.failing_since) == (True, None, None)


# --- secrets ----------------------------------------------------------------------------------


def test_a_generated_secret_is_whsec_and_32_bytes() -> None:
    secret = generate_secret(bytes(range(32)))

    assert secret == "whsec_" + base64.b64encode(bytes(range(32))).decode()
    assert decode_secret(secret) == bytes(range(32))
    with pytest.raises(ValueError, match="32 bytes"):
        generate_secret(b"short")


@pytest.mark.parametrize(("size", "ok"), [(23, False), (24, True), (64, True), (65, False)])
def test_a_given_secret_must_hold_24_to_64_bytes(size: int, ok: bool) -> None:
    secret = encode_secret(b"x" * size)
    if ok:
        assert check_secret(secret) == secret
    else:
        with pytest.raises(ValidationFailed) as caught:
            check_secret(secret)
        assert caught.value.field == "secret"


def test_a_secret_without_the_prefix_is_normalised() -> None:
    bare = base64.b64encode(b"y" * 30).decode()
    assert check_secret(bare) == "whsec_" + bare


@pytest.mark.parametrize("given_", ["", "whsec_", "whsec_!!!!", None, ["whsec_x"], "w" * 201])
def test_malformed_secrets_are_refused(given_: object) -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_secret(given_)
    assert caught.value.field == "secret"


def test_rotation_keeps_the_old_secret_signing_until_the_overlap_ends() -> None:
    clock = fixed_clock(NOW)
    old = endpoint()
    new_secret = generate_secret(b"n" * 32)
    rotated = rotate(old, new_secret, clock(), DAY_MS)

    assert signing_secrets(old, NOW) == [old.secret]
    assert signing_secrets(rotated, NOW) == [new_secret, old.secret]
    assert signing_secrets(rotated, NOW + DAY_MS - 1) == [new_secret, old.secret]
    assert signing_secrets(rotated, NOW + DAY_MS) == [new_secret]
    assert rotated.updated_at == NOW

    again = rotate(rotated, generate_secret(b"m" * 32), NOW + 10, DAY_MS)
    assert signing_secrets(again, NOW + 10) == [again.secret, new_secret]


# --- who receives what ------------------------------------------------------------------------


@given(
    st.one_of(st.none(), st.lists(st.sampled_from(EVENT_TYPES), unique=True, min_size=1)),
    st.sampled_from(EVENT_TYPES),
)
def test_subscription_is_the_filter_and_ping_is_never_fanned_out(
    filter_: list[str] | None, event_type: str
) -> None:
    types = None if filter_ is None else tuple(filter_)
    expected = event_type != "ping" and (types is None or event_type in types)
    assert subscribes(types, event_type) is expected


def test_recipients_are_enabled_subscribed_and_not_excluded() -> None:
    everything = endpoint(id="ep_01JD0Q0000000000000000000B")
    succeeded_only = endpoint(id="ep_01JD0Q0000000000000000000C", event_types=("task.succeeded",))
    disabled = endpoint(id="ep_01JD0Q0000000000000000000D", enabled=False)
    deleted = endpoint(id="ep_01JD0Q0000000000000000000E", deleted_at=NOW)
    all_of_them = [everything, succeeded_only, disabled, deleted]

    assert recipients(all_of_them, "task.queued") == [everything]
    assert recipients(all_of_them, "task.succeeded") == [everything, succeeded_only]
    assert recipients(all_of_them, "ping") == []
    assert recipients(all_of_them, "endpoint.disabled", exclude=everything.id) == []


def test_the_endpoint_object_never_carries_a_secret() -> None:
    rotated = rotate(endpoint(event_types=("ping",)), generate_secret(b"n" * 32), NOW, DAY_MS)
    shown = endpoint_object(rotated)

    assert set(shown) == {
        "id",
        "url",
        "description",
        "event_types",
        "enabled",
        "disabled_reason",
        "created_at",
        "updated_at",
    }
    assert shown["event_types"] == ["ping"]
    assert shown["created_at"] == "2026-05-28T20:26:40.000Z"
    assert "whsec_" not in repr(shown)


def test_a_ping_names_its_endpoint() -> None:
    target = endpoint()
    event = ping_event("evt_01JD0Q0000000000000000000A", target, NOW)

    assert (event.type, event.account_id, event.task_id) == ("ping", target.account_id, None)
    assert event.payload == (
        '{"type":"ping","timestamp":"2026-05-28T20:26:40.000Z",'
        f'"data":{{"endpoint_id":"{target.id}"}}}}'
    )
