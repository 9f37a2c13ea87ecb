"""Subscriber endpoints: what a valid one looks like, who receives which event, which secrets sign.

Pure: request bodies come in as parsed JSON, time and randomness are passed in. Validation is
strict (unknown fields are refused, naming them) for the same reason as tasks: a typo'd
``event_type`` that we silently ignored would subscribe the endpoint to everything.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from service.core.clock import to_rfc3339
from service.core.events import EVENT_TYPES, Event, envelope
from service.core.signing import decode_secret, encode_secret
from service.core.tasks import storable_text
from service.errors import ValidationFailed

MAX_URL = 2048
MAX_DESCRIPTION = 500
GENERATED_SECRET_BYTES = 32
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64

#: ``disabled_reason`` values: set by PATCH, by a 410 answer, and after failing too long
DISABLED_MANUALLY = "manual"
DISABLED_GONE = "gone"
DISABLED_FAILING = "failing"

_CREATE_FIELDS = frozenset({"url", "description", "event_types", "secret"})
_PATCH_FIELDS = frozenset({"url", "description", "event_types", "enabled"})


class _Unset(enum.Enum):
    """Marks a PATCH field that was not sent (``None`` is a value: "all event types")."""

    UNSET = enum.auto()


UNSET = _Unset.UNSET


@dataclass(frozen=True)
class Endpoint:
    id: str
    account_id: str
    url: str
    description: str
    #: ``None`` subscribes to every type
    event_types: tuple[str, ...] | None
    enabled: bool
    disabled_reason: str | None
    secret: str
    previous_secret: str | None
    previous_secret_until: int | None
    #: start of the current run of failed attempts (``None`` while healthy)
    failing_since: int | None
    created_at: int
    updated_at: int
    deleted_at: int | None = None


@dataclass(frozen=True)
class EndpointCreate:
    url: str
    description: str
    event_types: tuple[str, ...] | None
    #: a secret the caller chose (already normalised to ``whsec_…``), else one is generated
    secret: str | None


@dataclass(frozen=True)
class EndpointPatch:
    url: str | None = None
    description: str | None = None
    event_types: tuple[str, ...] | _Unset | None = UNSET
    enabled: bool | None = None


def parse_create(body: object) -> EndpointCreate:
    """Validate a ``POST /v1/endpoints`` body; ``ValidationFailed`` names the first bad field."""
    fields = _object(body, _CREATE_FIELDS)
    if "url" not in fields:
        raise ValidationFailed("url is required.", field="url")
    secret = fields.get("secret")
    return EndpointCreate(
        url=check_url(fields["url"]),
        description=_description(fields.get("description")),
        event_types=_event_types(fields.get("event_types")),
        secret=None if secret is None else check_secret(secret),
    )


def parse_patch(body: object) -> EndpointPatch:
    """Validate a ``PATCH /v1/endpoints/{id}`` body: only the fields sent change."""
    fields = _object(body, _PATCH_FIELDS)
    enabled = fields.get("enabled")
    if "enabled" in fields and not isinstance(enabled, bool):
        raise ValidationFailed("enabled must be true or false.", field="enabled")
    return EndpointPatch(
        url=check_url(fields["url"]) if "url" in fields else None,
        description=_description(fields["description"]) if "description" in fields else None,
        event_types=_event_types(fields["event_types"]) if "event_types" in fields else UNSET,
        enabled=enabled,
    )


def apply_patch(endpoint: Endpoint, patch: EndpointPatch, now_ms: int) -> Endpoint:
    """The endpoint after ``patch``. Re-enabling starts it healthy again: the reason it was
    disabled and the run of failures that led there no longer describe it."""
    changed = replace(
        endpoint,
        url=endpoint.url if patch.url is None else patch.url,
        description=endpoint.description if patch.description is None else patch.description,
        event_types=(
            endpoint.event_types if isinstance(patch.event_types, _Unset) else patch.event_types
        ),
    )
    if patch.enabled is True and not endpoint.enabled:
        changed = replace(changed, enabled=True, disabled_reason=None, failing_since=None)
    elif patch.enabled is False and endpoint.enabled:
        changed = replace(changed, enabled=False, disabled_reason=DISABLED_MANUALLY)
    if changed == endpoint:
        return endpoint
    return replace(changed, updated_at=now_ms)


def rotate(endpoint: Endpoint, new_secret: str, now_ms: int, overlap_ms: int) -> Endpoint:
    """Swap in ``new_secret``; the current one keeps signing for ``overlap_ms`` so receivers can
    roll over without rejecting anything. Only the latest previous secret is kept."""
    return replace(
        endpoint,
        secret=new_secret,
        previous_secret=endpoint.secret,
        previous_secret_until=now_ms + overlap_ms,
        updated_at=now_ms,
    )


def check_url(value: object) -> str:
    """An absolute http(s) URL of at most ``MAX_URL`` characters (reachability is checked
    elsewhere: that needs DNS)."""
    message = f"url must be an http(s) URL of at most {MAX_URL} characters."
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_URL:
        raise ValidationFailed(message, field="url")
    if not value.isascii() or not value.isprintable() or " " in value:
        raise ValidationFailed(message, field="url")
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 (parsing the port is the check: "http://h:x/" raises)
    except ValueError:
        raise ValidationFailed(message, field="url") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValidationFailed(message, field="url")
    return value


def generate_secret(entropy: bytes) -> str:
    """A new signing secret from ``GENERATED_SECRET_BYTES`` random bytes (passed in)."""
    if len(entropy) != GENERATED_SECRET_BYTES:
        raise ValueError(f"entropy must be {GENERATED_SECRET_BYTES} bytes")
    return encode_secret(entropy)


def check_secret(given: object) -> str:
    """A caller's own secret, normalised to ``whsec_…``. Fewer than 24 bytes is guessable;
    more than 64 is longer than an HMAC-SHA256 block and buys nothing."""
    message = (
        f"secret must be whsec_ followed by the base64 of {MIN_SECRET_BYTES} to"
        f" {MAX_SECRET_BYTES} random bytes."
    )
    if not isinstance(given, str) or len(given) > 200:
        raise ValidationFailed(message, field="secret")
    try:
        key = decode_secret(given)
    except ValueError:
        raise ValidationFailed(message, field="secret") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValidationFailed(message, field="secret")
    return encode_secret(key)


def subscribes(event_types: tuple[str, ...] | None, event_type: str) -> bool:
    """Whether an endpoint with this filter receives ``event_type`` by fan-out. ``ping`` never
    does: it goes only to the endpoint being tested, whatever that endpoint's filter."""
    if event_type == "ping":
        return False
    return event_types is None or event_type in event_types


def recipients(
    endpoints: Iterable[Endpoint], event_type: str, *, exclude: str | None = None
) -> list[Endpoint]:
    """The endpoints an event fans out to: enabled, subscribed, and not ``exclude`` (the endpoint
    an ``endpoint.disabled`` event is about goes to the account's *other* endpoints)."""
    return [
        e
        for e in endpoints
        if e.enabled
        and e.deleted_at is None
        and e.id != exclude
        and subscribes(e.event_types, event_type)
    ]


def signing_secrets(endpoint: Endpoint, now_ms: int) -> list[str]:
    """The secrets a delivery is signed with now: the current one, plus the previous one while
    its overlap after a rotation lasts."""
    secrets = [endpoint.secret]
    until = endpoint.previous_secret_until
    if endpoint.previous_secret is not None and until is not None and now_ms < until:
        secrets.append(endpoint.previous_secret)
    return secrets


def ping_event(event_id: str, endpoint: Endpoint, now_ms: int) -> Event:
    """The ``ping`` a test sends: it names the endpoint so a receiver can tell which one rang."""
    payload = envelope("ping", {"endpoint_id": endpoint.id}, now_ms)
    return Event(event_id, endpoint.account_id, "ping", None, payload, now_ms)


def endpoint_object(endpoint: Endpoint) -> dict[str, Any]:
    """The contract's endpoint object. Never the secret: it is shown on create and rotate only."""
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": None if endpoint.event_types is None else list(endpoint.event_types),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "created_at": to_rfc3339(endpoint.created_at),
        "updated_at": to_rfc3339(endpoint.updated_at),
    }


def _object(body: object, allowed: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise ValidationFailed("The request body must be a JSON object.")
    unknown = sorted(set(body) - allowed)
    if unknown:
        names = ", ".join(f"'{name}'" for name in unknown)
        raise ValidationFailed(
            f"Unknown field{'s' if len(unknown) > 1 else ''} {names}.", field=unknown[0]
        )
    return body


def _description(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION or not storable_text(value):
        raise ValidationFailed(
            f"description must be text (no NUL) of at most {MAX_DESCRIPTION} characters.",
            field="description",
        )
    return value


def _event_types(value: object) -> tuple[str, ...] | None:
    """``None`` (or omitted) means every type; a list must be non-empty, known and distinct."""
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise ValidationFailed(
            "event_types must be a non-empty list of event types, or null for all.",
            field="event_types",
        )
    for item in value:
        if not isinstance(item, str) or item not in EVENT_TYPES:
            raise ValidationFailed(
                f"event_types may hold only {', '.join(EVENT_TYPES)}.", field="event_types"
            )
    if len(set(value)) != len(value):
        raise ValidationFailed("event_types lists a type twice.", field="event_types")
    return tuple(value)
