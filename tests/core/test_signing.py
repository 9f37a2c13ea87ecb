"""Standard Webhooks signing, checked against the reference ``standardwebhooks`` package both
ways, plus every way a signature can be wrong."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from service.core.signing import (
    SignatureInvalid,
    decode_secret,
    encode_secret,
    headers_for,
    sign,
    verify,
)

KEY = bytes(range(32))
OLD = bytes(range(32, 64))
SECRET = encode_secret(KEY)
NOW = 1_790_000_000
BODY = b'{"type":"ping","data":{"x":1}}'


def test_secret_round_trip_and_prefix_optional() -> None:
    assert SECRET.startswith("whsec_")
    assert decode_secret(SECRET) == KEY
    assert decode_secret(SECRET.removeprefix("whsec_")) == KEY


@pytest.mark.parametrize("bad", ["whsec_", "whsec_!!!", "not base64 at all", ""])
def test_bad_secrets_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        decode_secret(bad)


def test_our_signature_verifies_with_the_reference_package() -> None:
    now = int(datetime.now(tz=UTC).timestamp())
    headers = headers_for([KEY], "msg_1", now, BODY)
    assert Webhook(SECRET).verify(BODY, headers) is not None


def test_both_signatures_verify_during_rotation() -> None:
    now = int(datetime.now(tz=UTC).timestamp())
    headers = headers_for([OLD, KEY], "msg_2", now, BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (encode_secret(OLD), SECRET):
        assert Webhook(secret).verify(BODY, headers) is not None


def test_reference_signature_verifies_with_ours() -> None:
    moment = datetime.fromtimestamp(NOW, tz=UTC)
    signature = Webhook(SECRET).sign("msg_3", moment, BODY.decode())
    headers = {"webhook-id": "msg_3", "webhook-timestamp": str(NOW), "webhook-signature": signature}
    assert verify([KEY], headers, BODY, NOW) == "msg_3"
    assert sign(KEY, "msg_3", NOW, BODY) == signature


def _good() -> dict[str, str]:
    return headers_for([KEY], "msg_4", NOW, BODY)


@pytest.mark.parametrize(
    ("change", "body", "now"),
    [
        ({"webhook-id": ""}, BODY, NOW),
        ({"webhook-timestamp": ""}, BODY, NOW),
        ({"webhook-signature": ""}, BODY, NOW),
        ({"webhook-id": "msg_other"}, BODY, NOW),
        ({"webhook-timestamp": str(NOW + 1)}, BODY, NOW),
        ({"webhook-timestamp": "soon"}, BODY, NOW),
        ({"webhook-timestamp": "1" * 40}, BODY, NOW),
        ({"webhook-signature": "garbage"}, BODY, NOW),
        ({"webhook-signature": "v1,"}, BODY, NOW),
        ({"webhook-signature": "v2," + base64.b64encode(b"x" * 32).decode()}, BODY, NOW),
        ({}, BODY + b" ", NOW),
        ({}, BODY, NOW + 301),
        ({}, BODY, NOW - 301),
    ],
)
def test_every_kind_of_wrong_is_refused(change: dict[str, str], body: bytes, now: int) -> None:
    headers = {**_good(), **change}
    with pytest.raises(SignatureInvalid) as caught:
        verify([KEY], headers, body, now)
    assert caught.value.status_code == 401
    assert (
        headers["webhook-signature"] not in caught.value.message or not headers["webhook-signature"]
    )


def test_wrong_key_is_refused_and_right_key_among_several_passes() -> None:
    with pytest.raises(SignatureInvalid):
        verify([OLD], _good(), BODY, NOW)
    assert verify([OLD, KEY], _good(), BODY, NOW) == "msg_4"


def test_tolerance_edges_are_inclusive() -> None:
    assert verify([KEY], _good(), BODY, NOW + 300) == "msg_4"
    assert verify([KEY], _good(), BODY, NOW - 300) == "msg_4"
