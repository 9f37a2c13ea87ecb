"""The soak's customers: accounts, keys and credits made with the operator CLI (as the README
says to), and their endpoints registered over the API on receivers with different temperaments.

Three accounts, so that "other accounts' ids" is a real question and credits balance per
account: two with plenty of credits, and one with so few that it runs dry and is refused (402)
until refunds of its failed tasks let it spend again.
"""

from __future__ import annotations

import asyncio
import base64
import random
import secrets
from dataclasses import dataclass, field

from tools.soak.api import BUSY, Api
from tools.soak.processes import Service
from tools.soak.receivers import Profile, Receiver

TERMINAL_TYPES = ["task.succeeded", "task.failed"]


@dataclass(frozen=True)
class EndpointSpec:
    profile: Profile
    #: None subscribes to everything
    event_types: list[str] | None = None
    #: give our own secret (True) or let the service generate one
    own_secret: bool = False


@dataclass
class Account:
    name: str
    credits: int
    #: the share of the task load this account submits
    weight: float
    specs: list[EndpointSpec]
    #: endpoints registered partway through the run (they get events from then on)
    later: list[EndpointSpec] = field(default_factory=list)
    id: str = ""
    key: str = ""
    receivers: list[Receiver] = field(default_factory=list)


def customers() -> list[Account]:
    return [
        Account(
            "studio", 1_000_000, 0.45,
            [
                EndpointSpec(Profile.HEALTHY),
                EndpointSpec(Profile.HEALTHY, TERMINAL_TYPES, own_secret=True),
                EndpointSpec(Profile.FLAKY),
                EndpointSpec(Profile.OUTAGE, own_secret=True),
                EndpointSpec(Profile.GONE),
            ],
            later=[EndpointSpec(Profile.HEALTHY)],
        ),
        Account(
            "agency", 1_000_000, 0.40,
            [
                EndpointSpec(Profile.HEALTHY, own_secret=True),
                EndpointSpec(
                    Profile.FLAKY, ["task.running", *TERMINAL_TYPES, "endpoint.disabled"]
                ),
                EndpointSpec(Profile.OUTAGE, ["task.queued", "task.submitted", *TERMINAL_TYPES]),
                EndpointSpec(Profile.GONE, TERMINAL_TYPES),
            ],
            later=[EndpointSpec(Profile.FLAKY, own_secret=True)],
        ),
        Account("shoestring", 300, 0.15, [EndpointSpec(Profile.HEALTHY)]),
    ]  # fmt: skip


@dataclass
class Revoked:
    """A key that was valid and then revoked: garbage must get 401 with it."""

    key: str


async def create_accounts(service: Service, accounts: list[Account]) -> Revoked:
    """Accounts and keys with the CLI, concurrently (each call is a process start)."""
    ids = await asyncio.gather(
        *(service.cli("accounts", "create", a.name, "--credits", str(a.credits)) for a in accounts)
    )
    for account, account_id in zip(accounts, ids, strict=True):
        account.id = account_id
    *keys, spare = await asyncio.gather(
        *(service.cli("keys", "create", "--account", a.id) for a in accounts),
        service.cli_full("keys", "create", "--account", accounts[0].id),
    )
    for account, key in zip(accounts, keys, strict=True):
        account.key = key
    key_id = spare.splitlines()[0].split()[2]  # "key id: key_…  account: …"
    await service.cli("keys", "revoke", key_id)
    return Revoked(spare.splitlines()[-1])


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def register(
    api: Api, account: Account, spec: EndpointSpec, rng: random.Random, silence_s: float
) -> Receiver:
    """Start a receiver and subscribe it; it learns its secret from the 201."""
    receiver = Receiver(
        f"{account.name}-{len(account.receivers) + 1}-{spec.profile}",
        spec.profile,
        random.Random(rng.random()),  # noqa: S311
        silence_s,
    )
    receiver.event_types = spec.event_types
    await receiver.start()
    body: dict[str, object] = {"url": receiver.url, "description": f"soak {receiver.name}"}
    if spec.event_types is not None:
        body["event_types"] = spec.event_types
    if spec.own_secret:
        body["secret"] = new_secret()
    # Web is up and stays up (faults have not started, or the caller holds their lock): no
    # retry, which could register the endpoint twice.
    answer = await api.settled("POST", "/v1/endpoints", retry_on=BUSY, key=account.key, body=body)
    if answer.status != 201:
        raise RuntimeError(f"registering {receiver.name}: {answer.status} {answer.body}")
    secret = answer.field("secret")
    if spec.own_secret and secret != body["secret"]:
        raise RuntimeError(f"{receiver.name}: the service changed our secret")
    receiver.learn_secret(str(answer.field("id")), str(secret))
    account.receivers.append(receiver)
    return receiver
