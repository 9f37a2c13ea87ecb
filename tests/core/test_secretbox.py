"""Sealing stored secrets: the derivation is the HKDF-SHA256 the module claims (checked against
RFC 5869 written out with ``hmac``), a sealed value opens only in its own context and under a
configured key, and no error carries the value, the plaintext or a key."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st

from service.core.secretbox import (
    KEY_ID_CHARS,
    NONCE_BYTES,
    PURPOSE,
    SealedSecretError,
    SealingKey,
    SecretBox,
    is_sealed,
    key_id_of,
)
from service.errors import StoreError

CURRENT = "current-secret-key-0123456789abcdefghijklmnop"
OLD = "old-secret-key-0123456789abcdefghijklmnopqrstu"
PLAIN = "whsec_" + base64.b64encode(bytes(range(32))).decode()
HERE = "endpoints.secret:ep_01"
NONCE = bytes(range(NONCE_BYTES))


def rfc5869_key(secret_key: str, info: bytes) -> bytes:
    """HKDF-SHA256 with no salt, 32 bytes out: extract, then one block of expand."""
    prk = hmac.digest(b"\0" * 32, secret_key.encode(), "sha256")
    return hmac.digest(prk, info + b"\x01", "sha256")


def test_a_value_is_aes_gcm_under_the_hkdf_key_bound_to_its_context() -> None:
    box = SecretBox.from_keys(CURRENT)

    sealed = box.seal(PLAIN, HERE, NONCE)

    prefix, version, key_id, body = sealed.split(":")
    assert (prefix, version, len(key_id)) == ("enc", "v1", KEY_ID_CHARS)
    raw = base64.b64decode(body, validate=True)
    assert raw[:NONCE_BYTES] == NONCE
    key = rfc5869_key(CURRENT, PURPOSE)
    assert AESGCM(key).decrypt(NONCE, raw[NONCE_BYTES:], HERE.encode()) == PLAIN.encode()
    assert key_id == hashlib.sha256(b"taskhook key id\0" + key).hexdigest()[:KEY_ID_CHARS]
    assert key_id_of(sealed) == key_id == box.current.key_id


def test_round_trip_and_nothing_of_the_plaintext_shows() -> None:
    box = SecretBox.from_keys(CURRENT)
    first, second = box.seal(PLAIN, HERE, NONCE), box.seal(PLAIN, HERE, bytes(NONCE_BYTES))

    assert box.open(first, HERE) == box.open(second, HERE) == PLAIN
    assert first != second  # a fresh nonce, a different value
    for sealed in (first, second):
        assert is_sealed(sealed)
        assert "whsec_" not in sealed
        assert PLAIN.removeprefix("whsec_") not in sealed
    assert not is_sealed(PLAIN)


def test_a_value_moved_to_another_row_or_column_does_not_open() -> None:
    box = SecretBox.from_keys(CURRENT)
    sealed = box.seal(PLAIN, HERE, NONCE)

    for elsewhere in ("endpoints.secret:ep_02", "endpoints.previous_secret:ep_01"):
        with pytest.raises(SealedSecretError, match="damaged or belongs to another row") as err:
            box.open(sealed, elsewhere)
        assert sealed not in err.value.message
        assert PLAIN not in err.value.message


def test_earlier_keys_open_and_only_the_current_one_seals() -> None:
    before = SecretBox.from_keys(OLD)
    after = SecretBox.from_keys(CURRENT, [OLD])
    old_value = before.seal(PLAIN, HERE, NONCE)

    assert after.open(old_value, HERE) == PLAIN
    assert not after.is_current(old_value)
    new_value = after.seal(PLAIN, HERE, NONCE)
    assert after.is_current(new_value)
    assert key_id_of(new_value) == after.current.key_id != before.current.key_id
    assert after.key_ids == {after.current.key_id, before.current.key_id}


def test_an_unconfigured_key_is_named_by_its_id_only() -> None:
    sealed = SecretBox.from_keys(OLD).seal(PLAIN, HERE, NONCE)
    wrong = SecretBox.from_keys(CURRENT)

    with pytest.raises(SealedSecretError, match="not configured") as err:
        wrong.open(sealed, HERE)

    assert isinstance(err.value, StoreError)
    assert key_id_of(sealed) in err.value.message
    assert "TASKHOOK_SECRET_KEY_PREVIOUS" in err.value.message
    for leak in (sealed.rsplit(":", 1)[1], PLAIN, OLD, CURRENT):
        assert leak not in err.value.message


def test_a_tampered_value_does_not_open() -> None:
    box = SecretBox.from_keys(CURRENT)
    head, body = box.seal(PLAIN, HERE, NONCE).rsplit(":", 1)
    raw = bytearray(base64.b64decode(body))
    raw[-1] ^= 1

    with pytest.raises(SealedSecretError, match="damaged"):
        box.open(f"{head}:{base64.b64encode(bytes(raw)).decode()}", HERE)


@pytest.mark.parametrize(
    "value",
    [
        "enc:v1:",
        "enc:v1:abc:AAAA",  # a key id of the wrong length
        "enc:v1:0123456789ab",  # no body
        "enc:v1:0123456789ab:!!!!",  # not base64
        "enc:v1:0123456789ab:AAAA",  # shorter than a nonce and a tag
        PLAIN,
    ],
)
def test_malformed_values_are_refused_without_echoing_them(value: str) -> None:
    with pytest.raises(SealedSecretError, match="not in the sealed format") as err:
        SecretBox.from_keys(CURRENT).open(value, HERE)
    assert err.value.message == "A stored secret is not in the sealed format."


def test_keys_differ_by_secret_key_and_by_purpose_and_repeats_are_dropped() -> None:
    ids = {
        SealingKey.derive(CURRENT).key_id,
        SealingKey.derive(OLD).key_id,
        SealingKey.derive(CURRENT, b"taskhook account-webhook-secret v1").key_id,
    }
    assert len(ids) == 3
    box = SecretBox.from_keys(CURRENT, [CURRENT, OLD, OLD])
    assert len(box.previous) == 1


def test_nothing_of_a_key_shows_in_a_repr() -> None:
    box = SecretBox.from_keys(CURRENT, [OLD])
    text = repr(box)
    assert box.current.key_id in text
    for key in (CURRENT, OLD):
        assert key not in text
        assert rfc5869_key(key, PURPOSE).hex() not in text


def test_the_nonce_must_be_twelve_bytes() -> None:
    with pytest.raises(ValueError, match="12 bytes"):
        SecretBox.from_keys(CURRENT).seal(PLAIN, HERE, b"short")


_TEXT = st.characters(codec="utf-8")  # what UTF-8 can encode (no lone surrogates)


@given(
    plain=st.text(_TEXT, max_size=200),
    where=st.text(_TEXT, max_size=80),
    nonce=st.binary(min_size=NONCE_BYTES, max_size=NONCE_BYTES),
)
def test_any_text_round_trips_in_its_context(plain: str, where: str, nonce: bytes) -> None:
    box = SecretBox.from_keys(CURRENT)
    assert box.open(box.seal(plain, where, nonce), where) == plain
