"""What customers do while the load runs, besides submitting: register new endpoints partway
through (they are owed every event from then on, and none from before), rotate a secret, send
test pings, ask for an event to be replayed to one of their endpoints, and re-apply a provider
callback from the log.

Pings and replays are new deliveries of kept events (same ``webhook-id``): the end checks treat
them like any other delivery, so a replay that went astray or arrived re-signed wrongly shows.
After a rotation every delivery must verify with the old secret and the new one (the contract's
24 h overlap). A re-applied callback must change nothing: it was applied once already.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field

from tools.soak.accounts import Account, register
from tools.soak.api import BUSY, Api
from tools.soak.faults import Faults
from tools.soak.receivers import Profile


@dataclass
class Subscribers:
    api: Api
    accounts: list[Account]
    faults: Faults
    rng: random.Random
    silence_s: float
    counts: Counter[str] = field(default_factory=Counter)

    async def run(self, seconds: float) -> None:
        await asyncio.gather(
            self._later_endpoints(seconds), self._rotate(seconds * 0.4), self._chatter(seconds)
        )

    async def _rotate(self, after_s: float) -> None:
        """Rotate the secret of each account's first healthy endpoint."""
        await asyncio.sleep(after_s)
        for account in self.accounts:
            healthy = [r for r in account.receivers if r.profile is Profile.HEALTHY]
            if not healthy or healthy[0].endpoint_id is None:
                continue
            receiver, endpoint_id = healthy[0], healthy[0].endpoint_id
            path = f"/v1/endpoints/{endpoint_id}/rotate-secret"
            async with self.faults.lock:  # not idempotent: no kill may lose its answer
                answer = await self.api.settled("POST", path, retry_on=BUSY, key=account.key)
            if answer.status != 200:
                raise RuntimeError(f"rotating {receiver.name}: {answer.status} {answer.body}")
            receiver.learn_secret(endpoint_id, str(answer.field("secret")))
            self.counts["secrets rotated"] += 1

    async def _later_endpoints(self, seconds: float) -> None:
        """Each account's ``later`` endpoints, spread over the first half of the run."""
        later = [(a, spec) for a in self.accounts for spec in a.later]
        for account, spec in later:
            await asyncio.sleep(seconds * 0.5 / len(later))
            async with self.faults.lock:  # web up, and no kill until it is registered
                receiver = await register(self.api, account, spec, self.rng, self.silence_s)
            self.faults.receivers.append(receiver)
            self.counts["endpoints registered mid-run"] += 1

    async def _chatter(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await asyncio.sleep(self.rng.uniform(1.0, 3.0))
            account = self.rng.choice(self.accounts)
            live = [r for r in account.receivers if r.profile is not Profile.GONE]
            if not live or not live[0].endpoint_id:
                continue
            receiver = self.rng.choice(live)
            roll = self.rng.random()
            if roll < 0.25:
                await self._replay_callback(account)
                continue
            if roll < 0.6:
                answer = await self.api.call(
                    "POST", f"/v1/endpoints/{receiver.endpoint_id}/test", key=account.key
                )
                self.counts[f"ping {answer.status or 'no answer'}"] += 1
                continue
            events = await self.api.call(
                "GET", "/v1/events", key=account.key, params={"limit": "20"}
            )
            data = events.field("data")
            if not data:
                continue
            event = self.rng.choice(data)["id"]
            answer = await self.api.call(
                "POST",
                f"/v1/events/{event}/replay",
                key=account.key,
                body={"endpoint_id": receiver.endpoint_id},
            )
            self.counts[f"event replay {answer.status or 'no answer'}"] += 1

    async def _replay_callback(self, account: Account) -> None:
        """Re-apply a logged provider callback: 200 and no second effect (a rejected one: 422)."""
        logged = await self.api.call(
            "GET", "/v1/callbacks", key=account.key, params={"limit": "20"}
        )
        data = logged.field("data")
        if not data:
            return
        record = self.rng.choice(data)
        answer = await self.api.call(
            "POST", f"/v1/callbacks/{record['id']}/replay", key=account.key
        )
        self.counts[f"callback replay {record['verdict']} {answer.status or 'no answer'}"] += 1
