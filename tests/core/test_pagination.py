"""List pages: ``limit`` parsing and opaque cursors."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.core.ids import PREFIXES, make_id
from service.core.pagination import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    PageRequest,
    decode_cursor,
    encode_cursor,
    next_cursor,
    page_request,
    parse_limit,
)
from service.errors import MalformedRequest, TaskhookError, ValidationFailed

T0 = 1_700_000_000_000
TASK_ID = make_id("task", T0, bytes(range(10)))
EVT_ID = make_id("evt", T0, bytes(range(10)))

ids = st.builds(
    make_id,
    st.sampled_from(sorted(PREFIXES)),
    st.integers(min_value=0, max_value=2**48 - 1),
    st.binary(min_size=10, max_size=10),
)


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# --- limit --------------------------------------------------------------------------------------


def test_contract_bounds() -> None:
    assert MAX_LIMIT == 100
    assert 1 <= DEFAULT_LIMIT <= MAX_LIMIT


def test_no_limit_is_the_default() -> None:
    assert parse_limit(None) == DEFAULT_LIMIT


@pytest.mark.parametrize("n", [1, 2, 20, 99, 100])
def test_limit_in_range(n: int) -> None:
    assert parse_limit(str(n)) == n


def test_limit_with_leading_zeros() -> None:
    assert parse_limit("007") == 7


@pytest.mark.parametrize("raw", ["0", "00", "101", "1000", "99999999999999999999"])
def test_limit_out_of_range_is_422(raw: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_limit(raw)
    assert caught.value.status_code == 422
    assert caught.value.field == "limit"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("", id="empty"),
        pytest.param("abc", id="letters"),
        pytest.param("-1", id="negative"),
        pytest.param("+5", id="plus"),
        pytest.param(" 5", id="leading-space"),
        pytest.param("5 ", id="trailing-space"),
        pytest.param("1.5", id="decimal"),
        pytest.param("1e2", id="exponent"),
        pytest.param("0x10", id="hex"),
        pytest.param("1_0", id="underscore"),
        pytest.param("\u0663", id="arabic-indic-three"),
        pytest.param("\u00b2", id="superscript-two"),
        pytest.param("\uff15", id="fullwidth-five"),
    ],
)
def test_limit_not_a_number_is_400(raw: str) -> None:
    with pytest.raises(MalformedRequest) as caught:
        parse_limit(raw)
    assert caught.value.status_code == 400
    assert caught.value.field == "limit"


@given(raw=st.text(max_size=12))
def test_limit_is_in_range_or_a_client_error(raw: str) -> None:
    try:
        limit = parse_limit(raw)
    except (MalformedRequest, ValidationFailed):
        return
    assert 1 <= limit <= MAX_LIMIT
    assert int(raw) == limit


@pytest.mark.parametrize("raw", ["1" * 4301, "0" * 4300 + "500", "9" * 50])
def test_a_very_long_limit_is_a_client_error(raw: str) -> None:
    # int() refuses more than 4300 digits with a bare ValueError, which would be a 500
    with pytest.raises(TaskhookError) as caught:
        parse_limit(raw)
    assert caught.value.status_code in (400, 422)


@pytest.mark.parametrize(("raw", "expected"), [("0050", 50), ("0001", 1), ("000100", 100)])
def test_leading_zeros_do_not_change_the_number(raw: str, expected: int) -> None:
    assert parse_limit(raw) == expected


# --- cursors ------------------------------------------------------------------------------------


@given(last_id=ids)
def test_cursor_round_trip(last_id: str) -> None:
    cursor = encode_cursor(last_id)
    prefix = last_id.partition("_")[0]
    assert decode_cursor(cursor, prefix) == last_id


@given(last_id=ids)
def test_cursor_is_url_safe_and_opaque(last_id: str) -> None:
    cursor = encode_cursor(last_id)
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert last_id not in cursor


@pytest.mark.parametrize("raw", [None, ""])
def test_no_cursor_is_the_first_page(raw: str | None) -> None:
    assert decode_cursor(raw, "task") is None


GOOD_CURSOR = encode_cursor(TASK_ID)

BAD_CURSORS = [
    pytest.param("!!!!", id="punctuation"),
    pytest.param("a", id="too-short"),
    pytest.param("é", id="non-ascii"),
    pytest.param("null", id="word"),
    pytest.param(TASK_ID, id="bare-id"),
    pytest.param(b64("v1:" + TASK_ID), id="old-base64-form"),
    pytest.param("d" + GOOD_CURSOR[1:], id="other-version"),
    pytest.param("c", id="version-only"),
    pytest.param(GOOD_CURSOR + "0", id="too-long"),
    pytest.param(GOOD_CURSOR[:-1], id="too-short-by-one"),
    pytest.param(GOOD_CURSOR.lower(), id="lowercase"),
    pytest.param(GOOD_CURSOR[:-1] + "U", id="not-crockford"),
    pytest.param(" " + GOOD_CURSOR, id="leading-space"),
]


@pytest.mark.parametrize("raw", BAD_CURSORS)
def test_bad_cursor_is_400(raw: str) -> None:
    with pytest.raises(MalformedRequest) as caught:
        decode_cursor(raw, "task")
    assert caught.value.status_code == 400
    assert caught.value.field == "cursor"


def test_a_cursor_is_a_place_in_time_for_any_list() -> None:
    # Every well-formed cursor is valid (so a schema can describe them); the query's account
    # scoping, not the cursor, decides what a page shows.
    assert decode_cursor(encode_cursor(EVT_ID), "task") == "task_" + EVT_ID.partition("_")[2]


@given(raw=st.text(max_size=80))
def test_any_text_decodes_to_an_id_or_is_400(raw: str) -> None:
    try:
        last_id = decode_cursor(raw, "task")
    except MalformedRequest:
        return
    assert last_id is None or last_id.startswith("task_")


# --- pages --------------------------------------------------------------------------------------


def test_page_request_combines_both() -> None:
    assert page_request("5", encode_cursor(TASK_ID), "task") == PageRequest(5, TASK_ID)
    assert page_request(None, None, "task") == PageRequest(DEFAULT_LIMIT, None)


def test_page_request_checks_both() -> None:
    with pytest.raises(ValidationFailed):
        page_request("0", None, "task")
    with pytest.raises(MalformedRequest):
        page_request("5", "not-a-cursor", "task")


@given(
    page=st.lists(ids, min_size=0, max_size=30, unique=True),
    limit=st.integers(min_value=1, max_value=25),
)
def test_next_cursor_points_at_the_last_row_shown(page: list[str], limit: int) -> None:
    rows = page[: limit + 1]  # what a query with LIMIT limit + 1 returns
    cursor = next_cursor(rows, limit)
    if len(rows) <= limit:
        assert cursor is None
        return
    assert cursor is not None
    last_shown = rows[limit - 1]
    assert decode_cursor(cursor, last_shown.partition("_")[0]) == last_shown
