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

import math
from pathlib import Path

from service.core.clock import system_clock
from service.core.ledger import TaskStatus
from service.settings import load_settings
from tools.bench import processes, seed
from tools.bench.callbacks import Callbacks
from tools.bench.context import Context
from tools.bench.load import CLIENT, LoadResult, Request, closed_loop_parallel
from tools.bench.results import Metric, Outcome
from tools.bench.seed import read_only
from tools.bench.wrkload import WRK, closed_loop_wrk

NAME = "1 ingest"
#: the most callbacks/s a run is prepared for (more tasks are seeded than any run can use)
CAP_PER_S = 6000
BARE_CAP_PER_S = 40_000
BARE_PATH = "/callbacks/simulator/bare-token"


async def run(ctx: Context) -> tuple[Outcome, float | None]:
    """Returns the findings and the serve process's peak RSS (MiB)."""
    out = Outcome()
    data_dir = ctx.run_dir / "ingest"
    secret = processes.new_secret_key()
    port, bare_port, durable_port = (processes.free_port() for _ in range(3))
    env = processes.service_env(data_dir, secret, TASKHOOK__WORKERS__IN_SERVE="false")
    settings = load_settings(env)
    base, bare_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{bare_port}"
    durable_base = f"http://127.0.0.1:{durable_port}"

    budget = ctx.warmup_seconds + ctx.runs * ctx.ingest_seconds
    now = system_clock()
    plan = seed.Plan(
        count=math.ceil(CAP_PER_S * budget), start_ms=now - 3_600_000, spacing_ms=1.0,
        status_of=lambda _i: TaskStatus.RUNNING, history=False,
        next_check_ms=now + 6 * 3_600_000, public_base=base,
    )  # fmt: skip
    await seed.build(
        settings.storage.database_path,
        [[("http://127.0.0.1:9/hook", None)]],
        plan,
        system_clock,
        secret_key=secret,
    )
    pool, used = plan.pool, 50  # the first 50 lend their bodies to the bare runs
    callbacks = Callbacks(settings, base)
    out.notes.append(
        f"ingest: storage.synchronous = {settings.storage.synchronous} (config/default.toml), "
        f"logging {settings.logging.format} at {settings.logging.level} to a file; "
        f"client: {'wrk' if WRK else CLIENT}, {ctx.client_processes} "
        f"{'threads' if WRK else 'processes'}, {ctx.concurrency} connections"
    )

    rate = Metric(NAME, "ingest callbacks/s", "1/s")
    bare = Metric(NAME, "bare Starlette requests/s", "1/s")
    ratio = Metric(NAME, "ratio ingest / bare", "x", target=(">=", 0.30))
    durable = Metric(NAME, "durable single-row write requests/s", "1/s")
    durable_ratio = Metric(NAME, "ratio ingest / durable single-row write", "x")
    durable_cpu = Metric(NAME, "durable write CPU per request", "µs")
    p99 = Metric(NAME, "ingest latency p99 (closed loop)", "ms")
    cpu = Metric(NAME, "serve CPU per callback", "µs")
    bare_cpu = Metric(NAME, "bare CPU per request", "µs")
    cpu_ratio = Metric(NAME, "ratio by server CPU: bare µs / ingest µs per request", "x")
    bare_cores = Metric(NAME, "bare server CPU (cores) during bare runs", "cores")
    client_cpu = Metric(NAME, "client CPU (cores) during bare runs", "cores")
    ok_total = cut_off_total = durable_ok = durable_cut_off = 0
    failures: list[str] = []
    durable_failures: list[str] = []

    serve = processes.serve(
        "ingest-serve", data_dir, secret, port, ctx.log_dir, cpus=ctx.placement.service,
        TASKHOOK__WORKERS__IN_SERVE="false",
    )  # fmt: skip
    bare_proc = processes.tool("bare", "tools.bench.bare", ["--port", str(bare_port)], ctx.log_dir,
                               cpus=ctx.placement.service)  # fmt: skip
    durable_proc = processes.tool(
        "durable", "tools.bench.durable",
        ["--port", str(durable_port), "--database", str(data_dir / "durable.db")],
        ctx.log_dir, cpus=ctx.placement.service,
    )  # fmt: skip
    with serve, bare_proc, durable_proc:
        await processes.wait_ready(serve, f"{base}/healthz")
        await processes.wait_ready(bare_proc, f"{bare_base}/healthz")
        await processes.wait_ready(durable_proc, f"{durable_base}/healthz")

        async def drive(url: str, requests: list[Request], seconds: float) -> LoadResult:
            if WRK is not None:
                return await closed_loop_wrk(
                    url, requests, concurrency=ctx.concurrency, duration_s=seconds,
                    threads=ctx.client_processes,
                )  # fmt: skip
            return await closed_loop_parallel(
                ctx.clients, ctx.client_processes, url, requests,
                concurrency=ctx.concurrency, duration_s=seconds,
            )  # fmt: skip

        async def ingest_once(seconds: float, best: float) -> tuple[LoadResult, float]:
            nonlocal used, ok_total, cut_off_total
            size = math.ceil(min(CAP_PER_S, max(1000.0, 2 * best)) * seconds)
            size = min(size, len(pool) - used)
            requests = callbacks.completions(pool[used : used + size])
            used += size
            cpu0 = serve.cpu_seconds()
            result = await drive(base, requests, seconds)
            ok_total += result.ok
            cut_off_total += result.cut_off
            if result.failed:
                failures.append(f"{dict(result.statuses)} {dict(result.errors)}")
            return result, serve.cpu_seconds() - cpu0

        # The same bytes ingest gets (real signed callbacks), sent again and again.
        samples = [Request(BARE_PATH, r.headers, r.body) for r in callbacks.completions(pool[:50])]

        async def baseline_once(proc: processes.Proc, url: str, seconds: float
                                ) -> tuple[LoadResult, float]:  # fmt: skip
            requests = samples * math.ceil(BARE_CAP_PER_S * seconds / len(samples))
            cpu0 = proc.cpu_seconds()
            result = await drive(url, requests, seconds)
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
        warm, _ = await ingest_once(ctx.warmup_seconds, CAP_PER_S / 2)
        best = warm.rate
        for _ in range(ctx.runs):
            b, b_cpu = await baseline_once(bare_proc, bare_base, ctx.ingest_seconds)
            d, d_cpu = await durable_once(ctx.ingest_seconds)
            i, i_cpu = await ingest_once(ctx.ingest_seconds, best)
            best = max(best, i.rate)
            bare.values.append(b.rate)
            rate.values.append(i.rate)
            ratio.values.append(i.rate / b.rate if b.rate else math.nan)
            durable.values.append(d.rate)
            durable_ratio.values.append(i.rate / d.rate if d.rate else math.nan)
            durable_cpu.values.append(d_cpu / max(d.ok, 1) * 1e6)
            p99.values.append(i.latency_p(99))
            cpu.values.append(i_cpu / max(i.ok, 1) * 1e6)
            bare_cpu.values.append(b_cpu / max(b.ok, 1) * 1e6)
            cpu_ratio.values.append(bare_cpu.values[-1] / cpu.values[-1])
            bare_cores.values.append(b_cpu / max(b.elapsed_s, 1e-9))
            client_cpu.values.append(b.client_cpu)
            if i.exhausted:
                out.notes.append("ingest: a run used up its prepared callbacks before its time")
        peak = serve.vm_hwm_mb()
    out.metrics += [rate, bare, ratio, durable, durable_ratio, p99, cpu, bare_cpu, durable_cpu,
                    cpu_ratio, bare_cores, client_cpu]  # fmt: skip
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
    _verify(out, settings.storage.database_path, ok_total, cut_off_total, failures)
    return out, peak


def _verify(out: Outcome, db: Path, ok_total: int, cut_off: int, failures: list[str]) -> None:
    """Every 2xx must be one applied callback, one succeeded task, one event, one delivery.
    Requests cut off unanswered when a run stopped (``cut_off``, wrk only) may have been
    committed too: each of them as a whole, so the counts must still agree with each other."""
    with read_only(db) as conn:

        def one(sql: str) -> int:
            count: int = conn.execute(sql).fetchone()[0]
            return count

        out.check(NAME, "answers that were not 2xx", "none", "; ".join(failures) or "none")
        stored = one("SELECT count(*) FROM callbacks")
        label = "callbacks stored = 2xx" + (" (+ any wrk cut off at a stop)" if cut_off else "")
        out.check_within(NAME, label, ok_total, ok_total + cut_off, stored)
        applied = (
            "SELECT count(*) FROM callbacks WHERE outcome = 'applied' AND verdict = 'verified'"
        )
        out.check(NAME, "callbacks applied (verified) = stored", stored, one(applied))
        out.check(NAME, "tasks succeeded = stored", stored,
                  one("SELECT count(*) FROM tasks WHERE status = 'succeeded'"))  # fmt: skip
        out.check(NAME, "task.succeeded events = stored", stored,
                  one("SELECT count(*) FROM events WHERE type = 'task.succeeded'"))  # fmt: skip
        out.check(NAME, "deliveries written = stored", stored,
                  one("SELECT count(*) FROM deliveries WHERE status = 'pending'"))  # fmt: skip
