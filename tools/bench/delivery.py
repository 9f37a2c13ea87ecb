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
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
from pathlib import Path

import aiohttp

from service.core.clock import system_clock
from service.core.ledger import TaskStatus
from service.settings import load_settings
from tools.bench import cpus as cpu_placement
from tools.bench import processes, seed
from tools.bench.context import Context
from tools.bench.results import Metric, Outcome
from tools.bench.seed import read_only

NAME = "2 delivery"
ENDPOINTS = 8


async def _received(session: aiohttp.ClientSession, stats_url: str) -> int:
    async with session.get(stats_url) as response:
        count: int = (await response.json())["count"]
        return count


def _query(db: Path, sql: str) -> tuple[int, ...]:
    with read_only(db) as conn:
        row: tuple[int, ...] = conn.execute(sql).fetchone()
        return row


async def _raw(
    template: Path, concurrency: int, per_host: int, cpus: frozenset[int] | None
) -> dict[str, float]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tools.bench.rawsend", "--db", str(template),
        "--concurrency", str(concurrency), "--per-host", str(per_host),
        cwd=processes.ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    cpu_placement.pin(proc.pid, cpus)  # where the worker runs
    stdout, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"rawsend failed ({proc.returncode})")
    result: dict[str, float] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result


async def run(ctx: Context) -> tuple[Outcome, float | None]:
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
    out.notes.append(
        f"delivery: {total} pending deliveries over {ENDPOINTS} endpoints on {ENDPOINTS} receiver "
        f"ports; delivery.concurrency = {limits.concurrency}, per_endpoint_concurrency = "
        f"{limits.per_endpoint_concurrency}, batch_size = {limits.batch_size} (config, unchanged); "
        f"storage.synchronous = {settings.storage.synchronous}"
    )

    rate = Metric(NAME, "worker deliveries/s", "1/s", target=(">=", 3000))
    raw_rate = Metric(NAME, "raw aiohttp loop POSTs/s", "1/s")
    ratio = Metric(NAME, "ratio worker / raw", "x", target=(">=", 0.5))
    cpu = Metric(NAME, "worker CPU per delivery", "µs")
    raw_cpu = Metric(NAME, "raw loop CPU per POST", "µs")
    cpu_ratio = Metric(NAME, "ratio by CPU: raw µs per POST / worker µs per delivery", "x")
    receiver_cpu = Metric(NAME, "receiver CPU (cores) during raw runs", "cores")
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
                                 ctx.placement.service)  # fmt: skip
                receiver_cpu.values.append(
                    (receiver.cpu_seconds() - receiver_cpu0)
                    / max(raw["last"] - raw["started"], 1e-9)
                )
                got = await _received(session, stats_url) - before
                out.check(NAME, f"run {k + 1}: raw loop 2xx = receiver count = backlog",
                          (total, total), (raw["ok"], got))  # fmt: skip
                raw_rate.values.append((raw["ok"] - 1) / max(raw["last"] - raw["first"], 1e-9))
                raw_cpu.values.append(raw["cpu_s"] / max(raw["ok"], 1) * 1e6)

                db_dir = base_dir / f"run{k}"
                db_dir.mkdir(parents=True, exist_ok=True)
                db = db_dir / "taskhook.db"
                shutil.copyfile(template, db)
                before = await _received(session, stats_url)
                worker = processes.worker(f"worker-{k}", db_dir, secret, ctx.log_dir,
                                          cpus=ctx.placement.service)  # fmt: skip
                with worker:
                    deadline = time.monotonic() + max(60.0, total / 100)
                    # CPU is counted from the first delivery on, as the raw loop counts its
                    # own from its first send: the worker's start-up (imports, opening the
                    # database; ~0.8 s) is not work per delivery.
                    while (counted_from := await _received(session, stats_url) - before) < 1:
                        if not worker.alive or time.monotonic() > deadline:
                            raise RuntimeError(f"worker never delivered:\n{worker.log_tail()}")
                        await asyncio.sleep(0.005)
                    cpu0 = worker.cpu_seconds()
                    while await _received(session, stats_url) - before < total:
                        if not worker.alive or time.monotonic() > deadline:
                            raise RuntimeError(
                                f"worker stalled at {await _received(session, stats_url) - before}"
                                f" of {total}:\n{worker.log_tail()}"
                            )
                        await asyncio.sleep(0.1)
                    # The receiver answered each before the worker recorded it: wait for the
                    # last records too.
                    finished = "SELECT count(*) FROM deliveries WHERE status <> 'pending'"
                    while time.monotonic() < deadline:
                        if _query(db, finished)[0] >= total:
                            break
                        await asyncio.sleep(0.1)
                    used = worker.cpu_seconds() - cpu0
                    hwm = worker.vm_hwm_mb()
                    peak = max(peak or 0.0, hwm or 0.0)
                got = await _received(session, stats_url) - before
                n, first, last = _query(
                    db, "SELECT count(*), min(updated_at), max(updated_at) FROM deliveries"
                    " WHERE status = 'delivered'",
                )  # fmt: skip
                attempts = _query(db, "SELECT count(*), sum(status_code BETWEEN 200 AND 299)"
                                      " FROM attempts")  # fmt: skip
                out.check(NAME, f"run {k + 1}: delivered = attempts = 2xx attempts = received",
                          (total,) * 4, (n, attempts[0], attempts[1], got))  # fmt: skip
                rate.values.append((n - 1) / max((last - first) / 1000, 1e-9))
                cpu.values.append(used / max(total - counted_from, 1) * 1e6)
                ratio.values.append(rate.values[-1] / raw_rate.values[-1])
                cpu_ratio.values.append(raw_cpu.values[-1] / cpu.values[-1])
    out.metrics += [rate, raw_rate, ratio, cpu, raw_cpu, cpu_ratio, receiver_cpu]
    return out, peak
