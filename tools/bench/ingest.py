"""Scenario 1: callbacks/s through ``POST /callbacks/simulator/{token}``, against two baselines.

taskhook runs as the Procfile's ``web:`` process (``serve`` with the workers off) on the
production config (``synchronous = FULL``). Every request is a distinct, valid, signed simulator
completion for a task that is running, so each one verifies its token and signature, moves the
task to ``succeeded``, and writes the callback, the timeline entry, the event and one delivery
(the account has one endpoint) in a transaction committed before the 200.

The issue names two references, and both run beside it under the same uvicorn settings: the
bare server (``tools.bench.bare``, the target's baseline) and a durable group-committed
single-row write (``tools.bench.durable``). The runs alternate bare, durable, ingest, bare… so
all three see the same machine; the ratios are taken per run. Afterwards the database must hold
exactly as many applied callbacks, events and deliveries as there were 2xx answers, and the
durable server as many rows as it answered 2xx.
"""

from __future__ import annotations

import contextlib
import math

from service.core.clock import system_clock
from service.core.ledger import TaskStatus
from service.settings import load_settings
from tools.bench import processes, seed
from tools.bench.context import Context
from tools.bench.ingest_sides import CAP_PER_S, NAME, Side, drive, pg_ratios
from tools.bench.load import CLIENT, LoadResult, Request
from tools.bench.results import Metric, Outcome
from tools.bench.seed import read_only
from tools.bench.stores import provision
from tools.bench.wrkload import WRK

BARE_CAP_PER_S = 40_000
BARE_PATH = "/callbacks/simulator/bare-token"


async def run(ctx: Context) -> tuple[Outcome, float | None]:
    """Returns the findings and the (first) web process's peak RSS (MiB) on SQLite."""
    async with contextlib.AsyncExitStack() as stack:
        return await _run(ctx, stack)


async def _run(ctx: Context, stack: contextlib.AsyncExitStack) -> tuple[Outcome, float | None]:
    out = Outcome()
    data_dir = ctx.run_dir / "ingest"
    secret = processes.new_secret_key()
    bare_port, durable_port = (processes.free_port() for _ in range(2))
    env = processes.service_env(data_dir, secret, TASKHOOK__WORKERS__IN_SERVE="false")
    settings = load_settings(env)
    bare_base = f"http://127.0.0.1:{bare_port}"
    durable_base = f"http://127.0.0.1:{durable_port}"

    # Enough tasks for a one-web and a two-web run per round up to ~1 200/s for one web.
    budget = ctx.warmup_seconds + ctx.runs * ctx.ingest_seconds
    now = system_clock()
    plan = seed.Plan(
        count=math.ceil(CAP_PER_S * budget), start_ms=now - 3_600_000, spacing_ms=1.0,
        status_of=lambda _i: TaskStatus.RUNNING, history=False,
        next_check_ms=now + 6 * 3_600_000,
    )  # fmt: skip
    seeded = settings.storage.database_path
    await seed.build(seeded, [[("http://127.0.0.1:9/hook", None)]], plan, system_clock,
                     secret_key=secret)  # fmt: skip
    # PostgreSQL first: its rows are copied from the seed before SQLite's web changes it.
    stores = [await provision(stack, server, "ingest", seeded, secret, ctx.log_dir)
              for server in reversed(ctx.servers)][::-1]  # fmt: skip
    sides = [Side.make(ctx, store, settings, secret, plan.pool) for store in stores]
    out.notes.append(
        f"ingest: storage.synchronous = {settings.storage.synchronous} (config/default.toml), "
        f"logging {settings.logging.format} at {settings.logging.level} to a file; "
        f"client: {'wrk' if WRK else CLIENT}, {ctx.client_processes} "
        f"{'threads' if WRK else 'processes'}, {ctx.concurrency} connections; two webs: web A "
        "on the service's CPU, web B on the other, client process i sending to web i % 2"
    )

    bare = Metric(NAME, "bare Starlette requests/s", "1/s")
    ratio = Metric(NAME, "ratio ingest / bare", "x", target=(">=", 0.30))
    durable = Metric(NAME, "durable single-row write requests/s", "1/s")
    durable_ratio = Metric(NAME, "ratio ingest / durable single-row write", "x")
    durable_cpu = Metric(NAME, "durable write CPU per request", "µs")
    bare_cpu = Metric(NAME, "bare CPU per request", "µs")
    cpu_ratio = Metric(NAME, "ratio by server CPU: bare µs / ingest µs per request", "x")
    bare_cores = Metric(NAME, "bare server CPU (cores) during bare runs", "cores")
    client_cpu = Metric(NAME, "client CPU (cores) during bare runs", "cores")
    durable_ok = durable_cut_off = 0
    durable_failures: list[str] = []

    bare_proc = processes.tool("bare", "tools.bench.bare", ["--port", str(bare_port)], ctx.log_dir,
                               cpus=ctx.placement.service)  # fmt: skip
    durable_proc = processes.tool(
        "durable", "tools.bench.durable",
        ["--port", str(durable_port), "--database", str(data_dir / "durable.db")],
        ctx.log_dir, cpus=ctx.placement.service,
    )  # fmt: skip
    for side in sides:
        stack.callback(side.stop)
        await side.start()
    with bare_proc, durable_proc:
        await processes.wait_ready(bare_proc, f"{bare_base}/healthz")
        await processes.wait_ready(durable_proc, f"{durable_base}/healthz")

        # The same bytes ingest gets (real signed callbacks), sent again and again.
        samples = [Request(BARE_PATH, r.headers, r.body)
                   for r in sides[0].callbacks.completions(plan.pool[:50])]  # fmt: skip

        async def baseline_once(proc: processes.Proc, url: str, seconds: float
                                ) -> tuple[LoadResult, float]:  # fmt: skip
            requests = samples * math.ceil(BARE_CAP_PER_S * seconds / len(samples))
            cpu0 = proc.cpu_seconds()
            result = await drive(ctx, [url], requests, seconds)
            return result, proc.cpu_seconds() - cpu0

        async def durable_once(seconds: float) -> tuple[LoadResult, float]:
            nonlocal durable_ok, durable_cut_off
            result, used_cpu = await baseline_once(durable_proc, durable_base, seconds)
            durable_ok += result.ok
            durable_cut_off += result.cut_off
            if result.failed:
                durable_failures.append(f"{dict(result.statuses)} {dict(result.errors)}")
            return result, used_cpu

        await baseline_once(bare_proc, bare_base, ctx.warmup_seconds)
        await durable_once(ctx.warmup_seconds)
        best = {id(side): (await side.once(ctx, ctx.warmup_seconds, CAP_PER_S / 2)).rate
                for side in sides}  # fmt: skip
        for _ in range(ctx.runs):
            b, b_cpu = await baseline_once(bare_proc, bare_base, ctx.ingest_seconds)
            d, d_cpu = await durable_once(ctx.ingest_seconds)
            bare.values.append(b.rate)
            durable.values.append(d.rate)
            durable_cpu.values.append(d_cpu / max(d.ok, 1) * 1e6)
            bare_cpu.values.append(b_cpu / max(b.ok, 1) * 1e6)
            bare_cores.values.append(b_cpu / max(b.elapsed_s, 1e-9))
            client_cpu.values.append(b.client_cpu)
            for side in sides:
                i = await side.once(ctx, ctx.ingest_seconds, best[id(side)])
                best[id(side)] = max(best[id(side)], i.rate)
                await side.once(ctx, ctx.ingest_seconds, best[id(side)], webs=2)
                if i.exhausted:
                    out.notes.append("ingest: a run used up its prepared callbacks early")
            lite = sides[0]
            rate_now = lite.metrics["rate1"].values[-1]
            ratio.values.append(rate_now / b.rate if b.rate else math.nan)
            durable_ratio.values.append(rate_now / d.rate if d.rate else math.nan)
            cpu_ratio.values.append(bare_cpu.values[-1] / lite.metrics["cpu"].values[-1])
        peak = sides[0].webs[0].vm_hwm_mb()
    lite_m = sides[0].metrics
    out.metrics += [lite_m["rate1"], bare, ratio, durable, durable_ratio, lite_m["p99"],
                    lite_m["cpu"], bare_cpu, durable_cpu, cpu_ratio, bare_cores, client_cpu,
                    lite_m["rate2"], lite_m["cpu2"]]  # fmt: skip
    for side in sides[1:]:
        out.metrics += list(side.metrics.values())
    out.metrics += pg_ratios(sides)
    with read_only(data_dir / "durable.db") as conn:
        durable_rows: int = conn.execute("SELECT count(*) FROM writes").fetchone()[0]
    out.check(NAME, "durable write: answers that were not 2xx", "none",
              "; ".join(durable_failures) or "none")  # fmt: skip
    out.check_within(NAME, "durable write: rows committed = 2xx" + (
        " (+ any wrk cut off at a stop)" if durable_cut_off else ""),
        durable_ok, durable_ok + durable_cut_off, durable_rows)  # fmt: skip
    if bare_cores.median < 0.9:
        out.notes.append(
            f"ingest: the bare server used {bare_cores.median:.2f} of its core, so the client "
            "(or the machine) limited the bare runs: the bare figure is a floor and the ratio "
            "errs high; the 'ratio by server CPU' compares the two servers' own cost per request"
        )
    for side in sides:
        side.stop()
        await side.verify(out)
        note = await side.store.statements_note("ingest")
        if note:
            out.notes.append(note)
    return out, peak
