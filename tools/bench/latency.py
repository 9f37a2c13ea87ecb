"""Scenario 3: end-to-end latency, callback sent → signed event received, at 500 callbacks/s.

(First, for information, at a light 100/s: the latency of the path itself, when nothing queues.)

Two deployments, each on the production config: ``python -m service serve`` with its workers
in-process (the default, as ``./scripts/serve`` runs it), and the Procfile's pair, ``web``
(serve without workers) and ``worker``, where web wakes the worker over a datagram after each
commit (``service.wakeup``). ``serve`` or ``web`` runs on a CPU of its own; the worker, this
process's load generator and receiver share the others (``tools.bench.cpus``). Callbacks are
offered open-loop at a fixed rate — each sent at its scheduled time whatever happened to the earlier
ones — for tasks seeded as running, on an account whose one endpoint is a receiver inside this
process: the same clock times the send and the arrival, and each arrival's task id is read from
its body. Latency counts from the scheduled send time, so any queueing in the client is charged
to the service rather than hidden.

The web + worker pair also runs on PostgreSQL with ``--database`` (a fresh database holding the
same seeded rows; the targets there are p50 <= 15 ms and p99 <= 60 ms), and each run counts the
CPU web, worker and the PostgreSQL server (``pgserver.ServerCpu``) spent per callback: the
cost model's inputs (``costs``).

Every received event is verified with the ``standardwebhooks`` package under the endpoint's
secret (after the run, not while timing), and the counts must agree: 2xx callbacks = events
received and verified = tasks succeeded = deliveries delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from service.core.clock import system_clock
from service.core.ledger import TaskStatus
from service.settings import load_settings
from tools.bench import processes, seed
from tools.bench.callbacks import Callbacks
from tools.bench.context import Context
from tools.bench.costs import Costs
from tools.bench.load import LoadResult, open_loop
from tools.bench.pgserver import PgServer
from tools.bench.receiver import Receiver, bind, serve_in_process
from tools.bench.results import Metric, Outcome, percentile
from tools.bench.stores import provision

NAME = "3 end-to-end"
SPLIT_NAME = "3 end-to-end, web+worker"
#: a light load, run first for information: the latency of the path when nothing queues
LIGHT_RATE = 100.0
LIGHT_RUNS = 3


async def run(ctx: Context) -> tuple[Outcome, float | None]:
    """``serve`` with its workers in-process."""
    return await _run(ctx, split=False)


async def run_split(ctx: Context) -> tuple[Outcome, float | None]:
    """The Procfile's ``web`` and ``worker``, on SQLite and then (``--database``) on
    PostgreSQL; the peak RSS returned is web's on SQLite."""
    out = Outcome()
    peak = None
    for server in ctx.servers:
        found, hwm = await _run(ctx, split=True, pg=server)
        out.extend(found)
        peak = hwm if peak is None else peak
    return out, peak


async def _run(ctx: Context, *, split: bool, pg: PgServer | None = None
               ) -> tuple[Outcome, float | None]:  # fmt: skip
    async with contextlib.AsyncExitStack() as stack:
        return await _run_on(ctx, stack, split=split, pg=pg)


async def _run_on(ctx: Context, stack: contextlib.AsyncExitStack, *, split: bool,
                  pg: PgServer | None) -> tuple[Outcome, float | None]:  # fmt: skip
    name = SPLIT_NAME if split else NAME
    out = Outcome()
    data_dir = ctx.run_dir / ("latency-split" if split else "latency")
    if pg is not None:
        data_dir = data_dir / "pg"
    secret = processes.new_secret_key()
    port = processes.free_port()
    base = f"http://127.0.0.1:{port}"
    env = processes.service_env(data_dir, secret)
    settings = load_settings(env)
    receiver = Receiver(record=True)
    sock = bind()
    hook = f"http://127.0.0.1:{sock.getsockname()[1]}/hooks"
    # (rate, runs, target?): first a light load, to show the latency of the path itself, then
    # the target load. A warm-up at the light rate comes first.
    series = [(LIGHT_RATE, LIGHT_RUNS, False), (ctx.latency_rate, ctx.runs, True)]
    warmup = math.ceil(LIGHT_RATE * ctx.warmup_seconds)
    sizes = [warmup] + [
        math.ceil(rate * ctx.latency_seconds) for rate, n, _ in series for _ in range(n)
    ]
    now = system_clock()
    plan = seed.Plan(
        count=sum(sizes), start_ms=now - 3_600_000, spacing_ms=1.0,
        status_of=lambda _i: TaskStatus.RUNNING, history=False,
        next_check_ms=now + 6 * 3_600_000, public_base=base,
    )  # fmt: skip
    accounts, _ = await seed.build(
        settings.storage.database_path, [[(hook, None)]], plan, system_clock, secret_key=secret
    )
    store = await provision(stack, pg, "latency", settings.storage.database_path, secret,
                            ctx.log_dir)  # fmt: skip
    backend = store.backend
    pg_tag = f" [{backend}]" if store.postgres else ""
    signer = Webhook(accounts[0].endpoints[0].secret)
    callbacks = Callbacks(settings, base)
    out.notes.append(
        f"end-to-end: callbacks offered open-loop ({LIGHT_RATE:g}/s for information, then "
        f"{ctx.latency_rate:g}/s against the targets) for {ctx.latency_seconds:g} s per run; "
        + (
            "web + worker processes (woken by datagram)"
            if split
            else "serve with workers in-process"
        )
        + (
            f" on {backend}"
            if store.postgres
            else f", storage.synchronous = {settings.storage.synchronous}"
        )
        + "; "
        "receiver in the load generator's process (one clock); latency from each callback's "
        "scheduled send time"
    )
    ok_total = received_total = verified = 0
    used = 0

    async def one_run(rate: float, size: int) -> tuple[LoadResult, list[float]]:
        nonlocal ok_total, received_total, verified, used
        requests = callbacks.completions(plan.pool[used : used + size])
        used += size
        receiver.arrivals.clear()
        result = await open_loop(base, requests, rate=rate)
        ok_total += result.ok
        for _ in range(300):  # the last events may still be on their way (up to 15 s)
            if len(receiver.arrivals) >= result.ok:
                break
            await asyncio.sleep(0.05)
        arrivals = list(receiver.arrivals)
        received_total += len(arrivals)
        latencies = []
        for arrival in arrivals:
            try:
                event = signer.verify(arrival.body, arrival.headers)
            except WebhookVerificationError:
                continue
            verified += 1
            due = result.sent_at.get(event["data"]["id"])
            if due is not None and event["type"] == "task.succeeded":
                latencies.append((arrival.at - due) * 1000)
        return result, latencies

    server, serving = await serve_in_process(receiver, sock)
    off = {"TASKHOOK__WORKERS__IN_SERVE": "false"} if split else {}
    label = "latency-web" if split else "latency-serve"
    label += "-pg" if store.postgres else ""
    serve = processes.serve(label, data_dir, secret, port, ctx.log_dir,
                            cpus=ctx.placement.service, **off, **store.env())  # fmt: skip
    # The worker is not pinned: it runs where the bench does, beside the load generator.
    worker = (processes.worker(f"latency-worker{'-pg' if store.postgres else ''}", data_dir,
                               secret, ctx.log_dir, cpus=None, **store.env())
              if split else None)  # fmt: skip
    try:
        with serve, worker if worker is not None else contextlib.nullcontext():
            await processes.wait_ready(serve, f"{base}/healthz")
            if worker is not None:
                await asyncio.sleep(1.0)  # the worker has opened the store and listens
            await one_run(LIGHT_RATE, warmup)
            for rate, runs, targeted in series:
                at = f"at {rate:g}/s"
                p50_target, p99_target = (15, 60) if store.postgres else (10, 50)
                p50 = Metric(name, f"callback → event received p50 {at}", "ms",
                             target=("<=", p50_target) if targeted else None,
                             backend=backend)  # fmt: skip
                p99 = Metric(name, f"callback → event received p99 {at}", "ms",
                             target=("<=", p99_target) if targeted else None,
                             backend=backend)  # fmt: skip
                worst = Metric(name, f"callback → event received max {at}", "ms", backend=backend)
                answer99 = Metric(name, f"callback answered (2xx) p99 {at}", "ms",
                                  backend=backend)  # fmt: skip
                lag = Metric(name, f"client send lag p99 {at}", "ms", backend=backend)
                cores = Metric(name, f"{'web' if split else 'serve'} CPU (cores) {at}", "cores",
                               backend=backend)  # fmt: skip
                costs = Costs(name, at, backend, worker is not None, store.postgres)
                for k in range(runs):
                    cpu0, started = serve.cpu_seconds(), time.monotonic()
                    await costs.start(serve, worker, store)
                    result, latencies = await one_run(rate, math.ceil(rate * ctx.latency_seconds))
                    cores.values.append(
                        (serve.cpu_seconds() - cpu0) / max(time.monotonic() - started, 1e-9)
                    )
                    await costs.stop(result.ok)
                    out.check(name, f"{at} run {k + 1}: callbacks offered = answered 2xx{pg_tag}",
                              result.sent, result.ok)  # fmt: skip
                    out.check(name, f"{at} run {k + 1}: events received = 2xx callbacks{pg_tag}",
                              result.ok, len(latencies))  # fmt: skip
                    p50.values.append(percentile(latencies, 50))
                    p99.values.append(percentile(latencies, 99))
                    worst.values.append(max(latencies, default=math.nan))
                    answer99.values.append(percentile(result.latencies_ms, 99))
                    lag.values.append(percentile(result.send_lag_ms, 99))
                out.metrics += [p50, p99, worst, answer99, lag, cores, *costs.metrics()]
            peak = serve.vm_hwm_mb()
    finally:
        server.should_exit = True
        await serving
        sock.close()
    out.check(name, "every received event verifies (standardwebhooks)" + pg_tag, received_total,
              verified)  # fmt: skip
    counts = await store.one(
        "SELECT (SELECT count(*) FROM tasks WHERE status = 'succeeded'),"
        " (SELECT count(*) FROM deliveries WHERE status = 'delivered'),"
        " (SELECT count(*) FROM callbacks WHERE outcome = 'applied')"
    )
    out.check(name, "2xx = tasks succeeded = delivered = applied callbacks = received" + pg_tag,
              (ok_total,) * 4, (*counts, received_total))  # fmt: skip
    note = await store.statements_note("end-to-end (web + worker)")
    if note:
        out.notes.append(note)
    return out, peak
