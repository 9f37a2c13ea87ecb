"""Faults on a random schedule: SIGKILL a worker or a ``web`` (any replica) at arbitrary
moments and start it again, and take an ``outage`` receiver off the network for a while. On
PostgreSQL with a server the soak owns, the server is also crashed (``pg_ctl stop -m
immediate``) and started again, in the middle of the run (and every few minutes in a long one).

SIGKILL, not SIGTERM: a crash runs no shutdown code, so whatever the service had claimed,
leased or half-sent is left exactly as it was at that instant — the case "never lost across a
crash" is about. The simulator is never killed: it stands for the provider, whose jobs survive
our outages.

``lock`` is held while a process or the database is down; whoever must not race a kill
(registering an endpoint, which has no idempotency key to make a retry safe) takes it too.
Kills and the database restart never overlap: a process that starts while the database is
down would be testing its start-up, not what the restart does to running processes.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field

from tools.soak.postgres import OwnedServer
from tools.soak.processes import Proc, Service
from tools.soak.receivers import Profile, Receiver

#: kill a worker, kill a web, kill one of each at once, take an outage receiver down; how often
KINDS = ["worker", "web", "both", "outage"]
WEIGHTS = [5, 3, 1, 3]


@dataclass
class Faults:
    service: Service
    receivers: list[Receiver]
    rng: random.Random
    every_s: tuple[float, float]
    #: the PostgreSQL server to restart mid-run (only ever one the soak started itself)
    database: OwnedServer | None = None
    counts: Counter[str] = field(default_factory=Counter)
    #: when each injected fault happened (seconds since the start), for the report
    log: list[tuple[float, str]] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _queue: list[str] = field(default_factory=list)
    _turns: Counter[str] = field(default_factory=Counter)
    _outages: set[asyncio.Task[None]] = field(default_factory=set)
    _started: float = field(default_factory=time.monotonic)

    async def run(self, seconds: float) -> None:
        """Inject faults for ``seconds``; on the way out everything is up again."""
        self._started = time.monotonic()
        self._queue = self.rng.sample(KINDS, len(KINDS))
        end = self._started + seconds
        restarts = asyncio.create_task(self._restarts(seconds))
        try:
            while True:
                wait = self.rng.uniform(*self.every_s)
                if time.monotonic() + wait >= end:
                    break
                await asyncio.sleep(wait)
                await self._one()
            await restarts
        finally:
            restarts.cancel()
            await asyncio.gather(restarts, return_exceptions=True)
            await self.heal()

    async def _restarts(self, seconds: float) -> None:
        """The database crashed and back: at the middle, and every 150 s of a longer run."""
        if self.database is None:
            return
        count = max(1, round(seconds / 150))
        for i in range(count):
            due = self._started + seconds * (2 * i + 1) / (2 * count)
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            down_s = self.rng.uniform(2.0, 5.0)
            async with self.lock:  # nothing that may not be retried runs while it is down
                self._note(f"postgresql crash (stop -m immediate), down {down_s:.1f}s")
                self.counts["postgresql restart"] += 1
                await self.database.stop("immediate")
                await asyncio.sleep(down_s)
                await self.database.start()

    def watch(self) -> None:
        """A process that died without our help is a finding: count it and start it again."""
        for proc in self.service.all:
            if proc.process is not None and not proc.alive:
                code = proc.process.returncode
                self._note(f"{proc.name} exited by itself ({code})")
                self.counts[f"unexpected exit {proc.name}"] += 1
                proc.start()

    async def _one(self) -> None:
        self.watch()
        # every kind once first (in random order), so even a short run sees them all
        choice = self._queue.pop() if self._queue else self.rng.choices(KINDS, WEIGHTS)[0]
        if choice == "worker":
            async with self.lock:  # not while the database is down: a start needs it
                await self._crash(self._turn(self.service.workers), self.rng.uniform(0.2, 3.0))
        elif choice == "web":
            async with self.lock:
                await self._crash(self._turn(self.service.webs), self.rng.uniform(0.2, 2.5))
        elif choice == "both":
            worker, web = self._turn(self.service.workers), self._turn(self.service.webs)
            async with self.lock:
                self._note(f"kill {worker.name}+{web.name}")
                self.counts["kill worker and web at once"] += 1
                await asyncio.gather(
                    self._crash(worker, self.rng.uniform(0.5, 3.0), note=False),
                    self._crash(web, self.rng.uniform(0.5, 3.0), note=False),
                )
        else:
            up = [r for r in self.receivers if r.profile is Profile.OUTAGE and r.down_since is None]
            if up:
                receiver = self.rng.choice(up)
                task = asyncio.create_task(self._outage(receiver, self.rng.uniform(1.0, 6.0)))
                self._outages.add(task)
                task.add_done_callback(self._outages.discard)

    def _turn(self, procs: list[Proc]) -> Proc:
        """The next of ``procs`` to kill: replicas in turn, so each is killed (a random pick
        could spare one in a short run)."""
        index = self._turns[procs[0].name]
        self._turns[procs[0].name] += 1
        return procs[index % len(procs)]

    async def _crash(self, proc: Proc, down_s: float, *, note: bool = True) -> None:
        if note:
            self._note(f"kill {proc.name}")
        self.counts[f"kill {proc.name}"] += 1
        proc.kill()
        await asyncio.sleep(down_s)
        proc.start()
        await proc.ready()

    async def _outage(self, receiver: Receiver, seconds: float) -> None:
        self._note(f"outage {receiver.name} {seconds:.1f}s")
        self.counts["receiver outage"] += 1
        await receiver.go_down()
        await asyncio.sleep(seconds)
        await receiver.come_up()

    def _note(self, what: str) -> None:
        self.log.append((round(time.monotonic() - self._started, 1), what))

    async def heal(self) -> None:
        """Every process running, every receiver listening."""
        self.watch()
        for task in list(self._outages):
            task.cancel()
        await asyncio.gather(*self._outages, return_exceptions=True)
        for receiver in self.receivers:
            await receiver.come_up()
        if self.database is not None:
            await self.database.start()
        for proc in self.service.all:
            if not proc.alive:
                proc.start()
        await asyncio.gather(*(proc.ready() for proc in self.service.all))
