"""Scenario 1's service side on one store: two ``web`` processes on one database, driven one
at a time or both at once, with their own CPU and the database server's counted per callback.

A side is one store (``stores``: SQLite, or a PostgreSQL database of its own) holding the same
seeded running tasks as every other side, and two web processes on it: web A on the service's
CPU, web B on the other (on a 2-core machine it shares that one with the load generator). The
one-web figure drives A alone; the two-web figure sends to both, client process ``i`` to web
``i % 2`` (no balancer in front: nothing between the clients and the webs costs CPU). Every
callback is for a task no earlier run used, so each run's 2xx are new rows to verify.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field

from service.settings import Settings
from tools.bench import processes
from tools.bench.callbacks import Callbacks
from tools.bench.context import Context
from tools.bench.load import LoadResult, Request, closed_loop_parallel, merge
from tools.bench.results import Metric, Outcome
from tools.bench.seed import PoolTask
from tools.bench.stores import SQLITE, BenchStore
from tools.bench.wrkload import WRK, closed_loop_wrk

NAME = "1 ingest"
CAP_PER_S = 6000


async def drive(ctx: Context, bases: list[str], requests: list[Request], seconds: float
                ) -> LoadResult:  # fmt: skip
    """A closed loop of ``ctx.concurrency`` connections spread over ``bases``."""
    if WRK is not None:
        share = max(1, ctx.client_processes // len(bases))
        parts = await asyncio.gather(*(
            closed_loop_wrk(base, requests[i :: len(bases)],
                            concurrency=ctx.concurrency // len(bases), duration_s=seconds,
                            threads=share)
            for i, base in enumerate(bases)
        ))  # fmt: skip
        if len(parts) == 1:
            return parts[0]
        total = merge(parts)
        total.cut_off = sum(p.cut_off for p in parts)
        total.percentiles = {q: max(p.latency_p(q) for p in parts) for q in (50, 99)}
        return total
    return await closed_loop_parallel(
        ctx.clients, max(ctx.client_processes, len(bases)), bases, requests,
        concurrency=ctx.concurrency, duration_s=seconds,
    )  # fmt: skip


def _metric(name: str, unit: str, backend: str, target: tuple[str, float] | None = None
            ) -> Metric:  # fmt: skip
    return Metric(NAME, name, unit, target=target, backend=backend)


@dataclass
class Side:
    store: BenchStore
    webs: list[processes.Proc]
    bases: list[str]
    callbacks: Callbacks
    pool: list[PoolTask]
    used: int = 50  # the first 50 lend their bodies to the bare runs
    ok_total: int = 0
    cut_off_total: int = 0
    failures: list[str] = field(default_factory=list)
    metrics: dict[str, Metric] = field(default_factory=dict)

    @classmethod
    def make(cls, ctx: Context, store: BenchStore, settings: Settings, secret: str,
             pool: list[PoolTask]) -> Side:  # fmt: skip
        ports = [processes.free_port() for _ in range(2)]
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        label = "pg" if store.postgres else "sqlite"
        data_dir = store.path.parent / ("pg" if store.postgres else "")
        webs = [
            processes.serve(f"ingest-{label}-web{n}", data_dir, secret, port, ctx.log_dir,
                            cpus=cpus, TASKHOOK__WORKERS__IN_SERVE="false", **store.env())
            for n, (port, cpus) in enumerate(
                zip(ports, (ctx.placement.service, ctx.placement.rest), strict=True))
        ]  # fmt: skip
        side = cls(store, webs, bases, Callbacks(settings, bases[0]), pool)
        b = store.backend
        side.metrics = {
            "rate1": _metric("ingest callbacks/s, one web", "1/s", b),
            "rate2": _metric("ingest callbacks/s, two webs", "1/s", b),
            "p99": _metric("ingest latency p99 (closed loop, one web)", "ms", b),
            "cpu": _metric("serve CPU per callback", "µs", b),
            "cpu2": _metric("web CPU per callback, two webs", "µs", b),
        }
        if store.postgres:
            side.metrics["db"] = _metric("PostgreSQL CPU per callback (our backends)", "µs", b)
            side.metrics["aux"] = _metric(
                "PostgreSQL auxiliary processes' CPU per callback (WAL writer…)", "µs", b
            )
        return side

    async def start(self) -> None:
        for web in self.webs:
            web.start()
        for web, base in zip(self.webs, self.bases, strict=True):
            await processes.wait_ready(web, f"{base}/healthz")

    def stop(self) -> None:
        for web in self.webs:
            web.stop()

    async def once(self, ctx: Context, seconds: float, best: float, webs: int = 1
                   ) -> LoadResult:  # fmt: skip
        """One closed-loop run through ``webs`` of the two web processes (``best``: the best
        one-web rate so far, to prepare enough callbacks); records its
        figures (unless it is a warm-up: ``seconds`` < ``ctx.ingest_seconds``)."""
        # Room for a run at twice the best one-web rate so far (three times with two webs).
        size = math.ceil(min(CAP_PER_S * webs, max(1000.0, (1 + webs) * best)) * seconds)
        size = min(size, len(self.pool) - self.used)
        requests = self.callbacks.completions(self.pool[self.used : self.used + size])
        self.used += size
        used_webs = self.webs[:webs]
        cpu0 = [w.cpu_seconds() for w in used_webs]
        server_cpu = self.store.server_cpu()
        if server_cpu is not None:
            await server_cpu.start()
        result = await drive(ctx, self.bases[:webs], requests, seconds)
        db = await server_cpu.stop() if server_cpu is not None else None
        web_cpu = sum(w.cpu_seconds() - c for w, c in zip(used_webs, cpu0, strict=True))
        self.ok_total += result.ok
        self.cut_off_total += result.cut_off
        if result.failed:
            self.failures.append(f"{dict(result.statuses)} {dict(result.errors)}")
        if seconds < ctx.ingest_seconds:
            return result
        per = 1e6 / max(result.ok, 1)
        m = self.metrics
        m["rate1" if webs == 1 else "rate2"].values.append(result.rate)
        m["cpu" if webs == 1 else "cpu2"].values.append(web_cpu * per)
        if webs == 1:
            m["p99"].values.append(result.latency_p(99))
        if db is not None and webs == 1:
            m["db"].values.append(db[0] * per)
            m["aux"].values.append(db[1] * per)
        return result

    async def verify(self, out: Outcome) -> None:
        """Every 2xx is one applied callback, one succeeded task, one event, one delivery.
        Requests wrk cut off unanswered at a stop may have been committed too, each whole."""
        tag = "" if self.store.backend == SQLITE else f" [{self.store.backend}]"
        ok, cut = self.ok_total, self.cut_off_total
        out.check(NAME, "answers that were not 2xx" + tag, "none",
                  "; ".join(self.failures) or "none")  # fmt: skip
        (stored,) = await self.store.one("SELECT count(*) FROM callbacks")
        label = "callbacks stored = 2xx" + (" (+ any wrk cut off at a stop)" if cut else "")
        out.check_within(NAME, label + tag, ok, ok + cut, stored)
        got = await self.store.one(
            "SELECT (SELECT count(*) FROM callbacks WHERE outcome = 'applied'"
            " AND verdict = 'verified'),"
            " (SELECT count(*) FROM tasks WHERE status = 'succeeded'),"
            " (SELECT count(*) FROM events WHERE type = 'task.succeeded'),"
            " (SELECT count(*) FROM deliveries WHERE status = 'pending')"
        )
        out.check(NAME, "applied callbacks = succeeded tasks = events = deliveries = stored"
                  + tag, (stored,) * 4, got)  # fmt: skip


def pg_ratios(sides: list[Side]) -> list[Metric]:
    """PostgreSQL / SQLite per run, one web and two (target >= 0.8 for the one-web figure)."""
    if len(sides) < 2:
        return []
    lite, pg = sides[0].metrics, sides[1].metrics
    out = []
    for key, label, target in (("rate1", "one web", (">=", 0.8)), ("rate2", "two webs", None)):
        ratio = Metric(NAME, f"ratio PostgreSQL / SQLite, ingest {label}", "x", target=target)
        ratio.values = [p / s if s else math.nan
                        for p, s in zip(pg[key].values, lite[key].values, strict=True)]  # fmt: skip
        out.append(ratio)
    return out
