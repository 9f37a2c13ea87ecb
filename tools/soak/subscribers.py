"""What subscribers do while the load runs: register new endpoints partway through (they are
owed every event from then on, and none from before), send test pings, and ask for an event to
be replayed to one of their endpoints.

Pings and replays are new deliveries of kept events (same ``webhook-id``): the end checks treat
them like any other delivery, so a replay that went astray or arrived re-signed wrongly shows.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field

from tools.soak.accounts import Account, register
from tools.soak.api import Api
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
        await asyncio.gather(self._later_endpoints(seconds), self._chatter(seconds))

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
            if self.rng.random() < 0.5:
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
