"""Endpoint use cases: register, read, change, delete, rotate the secret, send a test ping.

The URL's reachability check resolves DNS, so it runs before the transaction (a slow resolver
must not hold the single writer); the endpoint is then re-read inside the transaction, so a
PATCH never writes back a secret a concurrent rotation just replaced.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from service.core.clock import Clock
from service.core.endpoints import (
    GENERATED_SECRET_BYTES,
    Endpoint,
    apply_patch,
    generate_secret,
    parse_create,
    parse_patch,
    ping_event,
    rotate,
)
from service.core.events import Event
from service.core.ids import is_id, new_id
from service.core.pagination import PageRequest
from service.delivery.ssrf import Resolve, TargetPolicy, check_url_resolving
from service.errors import NotFound
from service.outbox import deliver
from service.store.base import Reads, Store

#: why deliveries still pending to a deleted endpoint were given up
DELETED_ERROR = "endpoint deleted"


@dataclass(frozen=True)
class EndpointPolicy:
    """What the endpoint use cases need from settings, wired once by the app."""

    targets: TargetPolicy
    #: how long a rotated-out secret keeps signing
    secret_overlap_ms: int
    #: DNS for the reachability check (``None``: the system resolver); tests pass a fake
    resolve: Resolve | None = None
    #: randomness for generated secrets
    entropy: Callable[[int], bytes] = field(default=secrets.token_bytes)

    async def check_target(self, url: str) -> None:
        await check_url_resolving(url, self.targets, resolver=self.resolve)


async def create_endpoint(
    store: Store, policy: EndpointPolicy, clock: Clock, *, account_id: str, body: object
) -> Endpoint:
    """Validate and register an endpoint; its secret (given or generated) is in the result."""
    request = parse_create(body)
    await policy.check_target(request.url)
    now = clock()
    endpoint = Endpoint(
        id=new_id("ep", now),
        account_id=account_id,
        url=request.url,
        description=request.description,
        event_types=request.event_types,
        enabled=True,
        disabled_reason=None,
        secret=request.secret or generate_secret(policy.entropy(GENERATED_SECRET_BYTES)),
        previous_secret=None,
        previous_secret_until=None,
        failing_since=None,
        created_at=now,
        updated_at=now,
    )
    async with store.transaction() as tx:
        await tx.insert_endpoint(endpoint)
    return endpoint


async def get_endpoint(reads: Reads, account_id: str, endpoint_id: str) -> Endpoint:
    """The account's endpoint, or 404 (for another account's too: no existence leaks)."""
    found = await reads.get_endpoint(account_id, endpoint_id) if is_id(endpoint_id, "ep") else None
    if found is None:
        raise NotFound("No such endpoint.", field="endpoint_id")
    return found


async def list_endpoints(store: Store, account_id: str, page: PageRequest) -> list[Endpoint]:
    return await store.list_endpoints(account_id, page)


async def update_endpoint(
    store: Store,
    policy: EndpointPolicy,
    clock: Clock,
    *,
    account_id: str,
    endpoint_id: str,
    body: object,
) -> Endpoint:
    """Apply a PATCH. A new URL passes the same reachability check as on create."""
    patch = parse_patch(body)
    current = await get_endpoint(store, account_id, endpoint_id)
    if patch.url is not None and patch.url != current.url:
        await policy.check_target(patch.url)
    async with store.transaction() as tx:
        endpoint = await get_endpoint(tx, account_id, endpoint_id)
        changed = apply_patch(endpoint, patch, clock())
        if changed is not endpoint:
            await tx.update_endpoint(changed)
    return changed


async def delete_endpoint(store: Store, clock: Clock, *, account_id: str, endpoint_id: str) -> None:
    """Soft-delete the endpoint and give up what was still due to it: nobody will receive it."""
    now = clock()
    async with store.transaction() as tx:
        if not is_id(endpoint_id, "ep") or not await tx.delete_endpoint(
            account_id, endpoint_id, now
        ):
            raise NotFound("No such endpoint.", field="endpoint_id")
        await tx.fail_pending_deliveries(endpoint_id, DELETED_ERROR, now)


async def rotate_secret(
    store: Store, policy: EndpointPolicy, clock: Clock, *, account_id: str, endpoint_id: str
) -> str:
    """A new secret for the endpoint (returned once); the old one signs alongside it for
    ``policy.secret_overlap_ms`` so receivers can switch without dropping a delivery."""
    now = clock()
    new_secret = generate_secret(policy.entropy(GENERATED_SECRET_BYTES))
    async with store.transaction() as tx:
        endpoint = await get_endpoint(tx, account_id, endpoint_id)
        await tx.update_endpoint(rotate(endpoint, new_secret, now, policy.secret_overlap_ms))
    return new_secret


async def send_test(store: Store, clock: Clock, *, account_id: str, endpoint_id: str) -> Event:
    """Write a ``ping`` event and exactly one delivery of it, to this endpoint only (whatever its
    event filter), in one transaction; the delivery worker sends it like any other."""
    now = clock()
    async with store.transaction() as tx:
        endpoint = await get_endpoint(tx, account_id, endpoint_id)
        event = ping_event(new_id("evt", now), endpoint, now)
        await tx.insert_event(event)
        await deliver(tx, event, [endpoint], now)
    return event
