"""Scenario 3: end-to-end latency, callback sent → signed event received, at 500 callbacks/s.

``python -m service serve`` with its workers in-process (the default, as ``./scripts/serve``
runs it) on the production config. Callbacks are offered open-loop at a fixed rate — each sent at
its scheduled time whatever happened to the earlier ones — for tasks seeded as running, on an
account whose one endpoint is a receiver inside this process: the same clock times the send and
the arrival, and each arrival's task id is read from its body. Latency counts from the scheduled
send time, so any queueing in the client is charged to the service rather than hidden.

Every received event is verified with the ``standardwebhooks`` package under the endpoint's
secret (after the run, not while timing), and the counts must agree: 2xx callbacks = events
received and verified = tasks succeeded = deliveries delivered.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from service.core.clock import system_clock
from service.core.ledger import TaskStatus
from service.settings import load_settings
from tools.bench import processes, seed
from tools.bench.callbacks import Callbacks
from tools.bench.context import Context
from tools.bench.load import open_loop
from tools.bench.receiver import Receiver, bind, serve_in_process
from tools.bench.results import Metric, Outcome, percentile

NAME = "3 end-to-end"


async def run(ctx: Context) -> tuple[Outcome, float | None]:
    out = Outcome()
    data_dir = ctx.run_dir / "latency"
    secret = processes.new_secret_key()
    port = processes.free_port()
    base = f"http://127.0.0.1:{port}"
    env = processes.service_env(data_dir, secret)
    settings = load_settings(env)
    receiver = Receiver(record=True)
    sock = bind()
    hook = f"http://127.0.0.1:{sock.getsockname()[1]}/hooks"
    per_run = math.ceil(ctx.latency_rate * ctx.latency_seconds)
    warmup = math.ceil(ctx.latency_rate * ctx.warmup_seconds)
    now = system_clock()
    plan = seed.Plan(
        count=warmup + ctx.runs * per_run, start_ms=now - 3_600_000, spacing_ms=1.0,
        status_of=lambda _i: TaskStatus.RUNNING, history=False,
        next_check_ms=now + 6 * 3_600_000, public_base=base,
    )  # fmt: skip
    accounts, _ = await seed.build(
        settings.storage.database_path, [[(hook, None)]], plan, system_clock
    )
    endpoint_secret = accounts[0].endpoints[0].secret
    callbacks = Callbacks(settings, base)
    out.notes.append(
        f"end-to-end: {ctx.latency_rate:g} callbacks/s offered open-loop for "
        f"{ctx.latency_seconds:g} s per run; serve with workers in-process, "
        f"storage.synchronous = {settings.storage.synchronous}; receiver in the load generator's "
        "process (one clock); latency from each callback's scheduled send time"
    )

    p50 = Metric(NAME, "callback → event received p50", "ms", target=("<=", 10))
    p99 = Metric(NAME, "callback → event received p99", "ms", target=("<=", 50))
    worst = Metric(NAME, "callback → event received max", "ms")
    answer99 = Metric(NAME, "callback answered (2xx) p99", "ms")
    lag = Metric(NAME, "client send lag p99", "ms")
    ok_total = received_total = verified = 0
    server, serving = await serve_in_process(receiver, sock)
    serve = processes.serve("latency-serve", data_dir, secret, port, ctx.log_dir)
    try:
        with serve:
            await processes.wait_ready(serve, f"{base}/healthz")
            used = 0
            for k in range(-1, ctx.runs):  # run -1 warms up
                size = warmup if k < 0 else per_run
                requests = callbacks.completions(plan.pool[used : used + size])
                used += size
                receiver.arrivals.clear()
                result = await open_loop(base, requests, rate=ctx.latency_rate)
                ok_total += result.ok
                for _ in range(200):  # the last events may still be on their way (≤ 10 s)
                    if len(receiver.arrivals) >= result.ok:
                        break
                    await asyncio.sleep(0.05)
                arrivals = list(receiver.arrivals)
                received_total += len(arrivals)
                latencies = []
                signer = Webhook(endpoint_secret)
                for arrival in arrivals:
                    try:
                        event = signer.verify(arrival.body, arrival.headers)
                    except WebhookVerificationError:
                        continue
                    verified += 1
                    due = result.sent_at.get(event["data"]["id"])
                    if due is not None and event["type"] == "task.succeeded":
                        latencies.append((arrival.at - due) * 1000)
                if k < 0:
                    continue
                out.check(NAME, f"run {k + 1}: events received = 2xx callbacks", result.ok,
                          len(latencies))  # fmt: skip
                p50.values.append(percentile(latencies, 50))
                p99.values.append(percentile(latencies, 99))
                worst.values.append(max(latencies, default=math.nan))
                answer99.values.append(percentile(result.latencies_ms, 99))
                lag.values.append(percentile(result.send_lag_ms, 99))
            peak = serve.vm_hwm_mb()
    finally:
        server.should_exit = True
        await serving
        sock.close()
    out.metrics += [p50, p99, worst, answer99, lag]
    out.check(NAME, "every received event verifies (standardwebhooks)", received_total, verified)
    conn = sqlite3.connect(f"file:{settings.storage.database_path}?mode=ro", uri=True)
    try:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM tasks WHERE status = 'succeeded'),"
            " (SELECT count(*) FROM deliveries WHERE status = 'delivered'),"
            " (SELECT count(*) FROM callbacks WHERE outcome = 'applied')"
        ).fetchone()
    finally:
        conn.close()
    out.check(NAME, "2xx = tasks succeeded = delivered = applied callbacks = received",
              (ok_total,) * 4, (*counts, received_total))  # fmt: skip
    return out, peak
