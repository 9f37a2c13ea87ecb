"""Scenario 2: signed deliveries/s from ``python -m service worker``, against a raw aiohttp loop.

A backlog of pending deliveries (each a real ``task.succeeded`` event of a real task) is spread
over eight accounts, each with one endpoint on its own port of one receiver process — eight
endpoints so ``per_endpoint_concurrency`` (8) does not cap the worker below its ``concurrency``
(64). The worker (the Procfile's ``worker:`` line, production config) claims, signs, POSTs and
records each; the rate is taken from the database's own timestamps, first to last delivered.

In each run the raw loop (``tools.bench.rawsend``) first POSTs the same signed bodies to the same
endpoints with the same connection limits, then the worker delivers a fresh copy of the backlog;
the ratio is taken per pair. Afterwards every delivery must be ``delivered`` with one 2xx attempt,
and the receiver must have counted exactly as many requests as were delivered.

The raw loop's rate swings most with the machine (5,700 to 12,600/s within one run), so each
run also sets the two processes' CPU per request side by side: a ratio no neighbour moves much.

Each run then delivers the backlog again with two workers on one database (one on the service's
CPU, one on the other), and, with ``--database``, both again on PostgreSQL (a fresh copy of a
seeded template database per run): the receiver keeps every ``webhook-id`` per port, and a run
passes only if none arrived twice — the run is shorter than a lease, so a second copy would be
two live workers sending one delivery under one lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from service.core.clock import system_clock
from service.core.ledger import TaskStatus
from service.settings import load_settings
from tools.bench import cpus as cpu_placement
from tools.bench import processes, seed
from tools.bench.context import Context
from tools.bench.results import Metric, Outcome
from tools.bench.stores import SQLITE, BenchStore, clone, provision

NAME = "2 delivery"
ENDPOINTS = 8


async def _received(session: aiohttp.ClientSession, stats_url: str) -> int:
    async with session.get(stats_url) as response:
        count: int = (await response.json())["count"]
        return count


async def _raw(
    template: Path, concurrency: int, per_host: int, cpus: frozenset[int] | None, secret: str
) -> dict[str, float]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tools.bench.rawsend", "--db", str(template),
        "--concurrency", str(concurrency), "--per-host", str(per_host),
        cwd=processes.ROOT, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "BENCH_SECRET_KEY": secret},  # not on a command line: ps shows those
    )  # fmt: skip
    cpu_placement.pin(proc.pid, cpus)  # where the worker runs
    stdout, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"rawsend failed ({proc.returncode})")
    result: dict[str, float] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


async def _stats(session: aiohttp.ClientSession, stats_url: str) -> dict[str, float]:
    async with session.get(stats_url) as response:
        found: dict[str, float] = await response.json()
        return found


@dataclass
class _Figures:
    """One store's figures, with one worker and with two."""

    backend: str
    rate: dict[int, Metric] = field(default_factory=dict)
    cpu: dict[int, Metric] = field(default_factory=dict)
    db: dict[int, Metric] = field(default_factory=dict)

    def __post_init__(self) -> None:
        b = self.backend
        for n, label in ((1, "one worker"), (2, "two workers")):
            target = (">=", 3000.0) if n == 1 and b == SQLITE else None
            name = "worker deliveries/s" if n == 1 else f"deliveries/s, {label}"
            self.rate[n] = Metric(NAME, name, "1/s", target=target, backend=b)
            name = "worker CPU per delivery" if n == 1 else f"worker CPU per delivery, {label}"
            self.cpu[n] = Metric(NAME, name, "µs", backend=b)
            if b != SQLITE:
                self.db[n] = Metric(NAME, f"PostgreSQL CPU per delivery (our backends), {label}",
                                    "µs", backend=b)  # fmt: skip

    def metrics(self) -> list[Metric]:
        return [*self.rate.values(), *self.cpu.values(), *self.db.values()]


async def _workers_run(
    ctx: Context,
    store: BenchStore,
    secret: str,
    count: int,
    session: aiohttp.ClientSession,
    stats_url: str,
    tag: str,
) -> tuple[float, float, float | None, float, int]:
    """``count`` workers deliver ``store``'s backlog; (deliveries/s, worker CPU µs per
    delivery, server CPU µs per delivery or None, peak RSS MiB, duplicates received)."""
    total = ctx.deliveries
    await _stats(session, stats_url.replace("/_stats", "/_reset"))
    before = await _received(session, stats_url)
    data_dir = store.path.parent / ("pg" if store.postgres else "")
    places = (ctx.placement.service, ctx.placement.rest)
    workers = [processes.worker(f"worker-{tag}-{n}", data_dir, secret, ctx.log_dir,
                                cpus=places[n % 2], **store.env())
               for n in range(count)]  # fmt: skip
    server_cpu = store.server_cpu()
    peak = 0.0
    try:
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + max(60.0, total / 100)
        # CPU is counted from the first delivery on, as the raw loop counts its own from its
        # first send: the workers' start-up (imports, opening the store; ~0.8 s) is not work
        # per delivery.
        while (counted_from := await _received(session, stats_url) - before) < 1:
            if not all(w.alive for w in workers) or time.monotonic() > deadline:
                raise RuntimeError(f"worker never delivered:\n{workers[0].log_tail()}")
            await asyncio.sleep(0.005)
        cpu0 = [w.cpu_seconds() for w in workers]
        if server_cpu is not None:
            await server_cpu.start()
        while (got := await _received(session, stats_url) - before) < total:
            if not all(w.alive for w in workers) or time.monotonic() > deadline:
                raise RuntimeError(f"workers stalled at {got} of {total}:\n"
                                   + "\n".join(w.log_tail() for w in workers))  # fmt: skip
            await asyncio.sleep(0.1)
        # The receiver answered each before a worker recorded it: wait for the last records.
        finished = "SELECT count(*) FROM deliveries WHERE status <> 'pending'"
        while time.monotonic() < deadline:
            if (await store.one(finished))[0] >= total:
                break
            await asyncio.sleep(0.1)
        used = sum(w.cpu_seconds() - c for w, c in zip(workers, cpu0, strict=True))
        db = await server_cpu.stop() if server_cpu is not None else None
        peak = max(w.vm_hwm_mb() or 0.0 for w in workers)
    finally:
        for worker in workers:
            worker.stop()
    stats = await _stats(session, stats_url)
    n, first, last = await store.one(
        "SELECT count(*), min(updated_at), max(updated_at) FROM deliveries"
        " WHERE status = 'delivered'"
    )
    rate = (n - 1) / max((last - first) / 1000, 1e-9)
    done = max(total - counted_from, 1)
    return (rate, used / done * 1e6, None if db is None else db[0] / done * 1e6, peak,
            int(stats["duplicates"]))  # fmt: skip


async def run(ctx: Context) -> tuple[Outcome, float | None]:
    async with contextlib.AsyncExitStack() as stack:
        return await _run(ctx, stack)


async def _run(ctx: Context, stack: contextlib.AsyncExitStack) -> tuple[Outcome, float | None]:
    out = Outcome()
    base_dir = ctx.run_dir / "delivery"
    secret = processes.new_secret_key()
    settings = load_settings(processes.service_env(base_dir / "probe", secret))
    limits = settings.delivery
    total = ctx.deliveries
    ports = [processes.free_port() for _ in range(ENDPOINTS)]
    stats_url = f"http://127.0.0.1:{ports[0]}/_stats"
    now = system_clock()
    plan = seed.Plan(
        count=total, start_ms=now - 3_600_000, spacing_ms=3_000_000 / total,
        status_of=lambda _i: TaskStatus.SUCCEEDED, history=False, pending_last=True,
    )  # fmt: skip
    template = base_dir / "template.db"
    await seed.build(
        template, [[(f"http://127.0.0.1:{port}/hooks", None)] for port in ports], plan,
        system_clock, secret_key=secret,
    )  # fmt: skip
    templates = [await provision(stack, server, "delivery_tmpl", template, secret, ctx.log_dir)
                 for server in ctx.servers]  # fmt: skip
    out.notes.append(
        f"delivery: {total} pending deliveries over {ENDPOINTS} endpoints on {ENDPOINTS} receiver "
        f"ports; delivery.concurrency = {limits.concurrency}, per_endpoint_concurrency = "
        f"{limits.per_endpoint_concurrency}, batch_size = {limits.batch_size} (config, unchanged); "
        f"storage.synchronous = {settings.storage.synchronous}; two workers: one on the "
        "service's CPU, one on the other (beside the receiver)"
    )

    raw_rate = Metric(NAME, "raw aiohttp loop POSTs/s", "1/s")
    ratio = Metric(NAME, "ratio worker / raw", "x", target=(">=", 0.5))
    raw_cpu = Metric(NAME, "raw loop CPU per POST", "µs")
    cpu_ratio = Metric(NAME, "ratio by CPU: raw µs per POST / worker µs per delivery", "x")
    receiver_cpu = Metric(NAME, "receiver CPU (cores) during raw runs", "cores")
    figures = [_Figures(t.backend) for t in templates]
    peak: float | None = None
    receiver = processes.tool(
        "receiver", "tools.bench.receiver", ["--ports", ",".join(map(str, ports))], ctx.log_dir
    )
    with receiver:
        await processes.wait_ready(receiver, stats_url)
        async with aiohttp.ClientSession() as session:
            for k in range(ctx.runs):
                before = await _received(session, stats_url)
                receiver_cpu0 = receiver.cpu_seconds()
                raw = await _raw(template, limits.concurrency, limits.per_endpoint_concurrency,
                                 ctx.placement.service, secret)  # fmt: skip
                receiver_cpu.values.append(
                    (receiver.cpu_seconds() - receiver_cpu0)
                    / max(raw["last"] - raw["started"], 1e-9)
                )
                got = await _received(session, stats_url) - before
                out.check(NAME, f"run {k + 1}: raw loop 2xx = receiver count = backlog",
                          (total, total), (raw["ok"], got))  # fmt: skip
                raw_rate.values.append((raw["ok"] - 1) / max(raw["last"] - raw["first"], 1e-9))
                raw_cpu.values.append(raw["cpu_s"] / max(raw["ok"], 1) * 1e6)
                for tmpl, fig in zip(templates, figures, strict=True):
                    for count in (1, 2):
                        tag = f"{'pg' if tmpl.postgres else 'sqlite'}{count}-{k}"
                        async with contextlib.AsyncExitStack() as run_stack:
                            db = await clone(run_stack, tmpl, "delivery",
                                             base_dir / f"run-{tag}" / "taskhook.db")  # fmt: skip
                            before = await _received(session, stats_url)
                            rate, cpu, db_cpu, hwm, dupes = await _workers_run(
                                ctx, db, secret, count, session, stats_url, tag)  # fmt: skip
                            got = await _received(session, stats_url) - before
                            await _check(out, db, k, count, total, got, dupes)
                            if k == ctx.runs - 1 and count == 2:
                                note = await db.statements_note("delivery (two workers)")
                                out.notes += [note] if note else []
                        fig.rate[count].values.append(rate)
                        fig.cpu[count].values.append(cpu)
                        if db_cpu is not None:
                            fig.db[count].values.append(db_cpu)
                        if count == 1 and not tmpl.postgres:
                            peak = max(peak or 0.0, hwm)
                lite = figures[0]
                ratio.values.append(lite.rate[1].values[-1] / raw_rate.values[-1])
                cpu_ratio.values.append(raw_cpu.values[-1] / lite.cpu[1].values[-1])
    lite = figures[0]
    out.metrics += [lite.rate[1], raw_rate, ratio, lite.cpu[1], raw_cpu, cpu_ratio,
                    receiver_cpu, lite.rate[2], lite.cpu[2]]  # fmt: skip
    for fig in figures[1:]:
        out.metrics += fig.metrics()
        for n, label in ((1, "one worker"), (2, "two workers")):
            pg_ratio = Metric(NAME, f"ratio PostgreSQL / SQLite, deliveries/s, {label}", "x",
                              target=(">=", 0.8) if n == 1 else None)  # fmt: skip
            pairs = zip(fig.rate[n].values, lite.rate[n].values, strict=True)
            pg_ratio.values = [p / s for p, s in pairs]
            out.metrics.append(pg_ratio)
    return out, peak


async def _check(out: Outcome, db: BenchStore, k: int, workers: int, total: int, got: int,
                 dupes: int) -> None:  # fmt: skip
    where = f"run {k + 1}, {db.backend}, {workers} worker{'s' if workers > 1 else ''}"
    n = (await db.one("SELECT count(*) FROM deliveries WHERE status = 'delivered'"))[0]
    attempts = await db.one(
        "SELECT count(*), sum(CASE WHEN status_code BETWEEN 200 AND 299 THEN 1 ELSE 0 END)"
        " FROM attempts"
    )
    out.check(NAME, f"{where}: delivered = attempts = 2xx attempts = received",
              (total,) * 4, (n, *attempts, got))  # fmt: skip
    out.check(NAME, f"{where}: webhook-ids received twice (within the run, under a lease)",
              0, dupes)  # fmt: skip
