"""The cost model: CPU per callback in ``web``, in ``worker`` and in the database server, and
the throughput it projects for N hosts.

``Costs`` counts, over one end-to-end run (scenario 3, web + worker: a callback in, its event
delivered out), the CPU each process used — from ``/proc/PID/stat`` for web and worker, from
``pgserver.ServerCpu`` for PostgreSQL's backends on the run's database and its auxiliary
processes — divided by the callbacks answered. That run is the whole pipeline at a steady
rate, so its figures are what one more callback costs in each process.

``project`` turns them into a ceiling per deployment: each host runs one web and one worker
and has ``host_cores`` cores; the one PostgreSQL server has ``db_cores`` and is shared by every
host. N hosts carry at most ``N * host_cores / (web + worker)`` callbacks per second, and the
server at most ``db_cores / db``: the projection is the smaller, and says which limits. It is a
ceiling — it assumes every core can be kept busy and that the CPU per callback stays what it was
at the measured rate — so it is to be read beside the measured two-web and two-worker figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from tools.bench.pgserver import ServerCpu
from tools.bench.processes import Proc
from tools.bench.results import Metric, Outcome
from tools.bench.stores import BenchStore

NAME = "6 cost model"
HOSTS = (1, 2, 4, 8, 16)


class Costs:
    """CPU per callback of web, worker and the server, over one run at a time."""

    def __init__(self, scenario: str, at: str, backend: str, split: bool, postgres: bool) -> None:
        def metric(what: str) -> Metric:
            return Metric(scenario, f"{what} CPU per callback {at}", "µs", backend=backend)

        self._web = metric("web" if split else "serve")
        self._worker = metric("worker") if split else None
        self._db = metric("PostgreSQL backends'") if postgres else None
        self._aux = metric("PostgreSQL auxiliary processes'") if postgres else None
        self._procs: list[tuple[Metric, Proc, float]] = []
        self._server: ServerCpu | None = None

    async def start(self, web: Proc, worker: Proc | None, store: BenchStore) -> None:
        self._procs = [(self._web, web, web.cpu_seconds())]
        if worker is not None and self._worker is not None:
            self._procs.append((self._worker, worker, worker.cpu_seconds()))
        self._server = store.server_cpu()
        if self._server is not None:
            await self._server.start()

    async def stop(self, callbacks: int) -> None:
        per = 1e6 / max(callbacks, 1)
        for metric, proc, cpu0 in self._procs:
            metric.values.append((proc.cpu_seconds() - cpu0) * per)
        if self._server is not None and self._db is not None and self._aux is not None:
            backends, aux = await self._server.stop()
            self._db.values.append(backends * per)
            self._aux.values.append(aux * per)
            self._server = None

    def metrics(self) -> list[Metric]:
        return [m for m in (self._web, self._worker, self._db, self._aux) if m is not None]


@dataclass(frozen=True)
class Projection:
    hosts: int
    per_host: float  # callbacks/s one host's web + worker can carry
    db_ceiling: float  # callbacks/s the server can carry (inf on SQLite: no shared server)
    throughput: float
    limit: str  # "hosts" or "database"


def project(web_us: float, worker_us: float, db_us: float | None, *, host_cores: float,
            db_cores: float, hosts: tuple[int, ...] = HOSTS) -> list[Projection]:  # fmt: skip
    """Callbacks/s for each number of ``hosts`` (see the module's docstring)."""
    per_host = host_cores * 1e6 / max(web_us + worker_us, 1e-9)
    ceiling = float("inf") if not db_us else db_cores * 1e6 / db_us
    return [
        Projection(n, per_host, ceiling, min(n * per_host, ceiling),
                   "database" if n * per_host > ceiling else "hosts")
        for n in hosts
    ]  # fmt: skip


def _find(outcome: Outcome, scenario: str, starts: str, backend: str) -> Metric | None:
    for m in outcome.metrics:
        if m.scenario == scenario and m.name.startswith(starts) and m.backend == backend \
                and m.values:  # fmt: skip
            return m
    return None


def model(outcome: Outcome, *, rate_label: str, host_cores: float, db_cores: float) -> Outcome:
    """The projection from scenario 3's PostgreSQL web + worker costs at ``rate_label``
    (e.g. "at 500/s"), as metrics and a note; empty when those were not measured."""
    from tools.bench.latency import SPLIT_NAME

    out = Outcome()
    found = {
        what: _find(outcome, SPLIT_NAME, f"{what} CPU per callback {rate_label}", "PostgreSQL")
        for what in ("web", "worker", "PostgreSQL backends'")
    }
    web, worker, db = found["web"], found["worker"], found["PostgreSQL backends'"]
    if web is None or worker is None or db is None:
        return out
    lines = project(web.median, worker.median, db.median, host_cores=host_cores,
                    db_cores=db_cores)  # fmt: skip
    for p in lines:
        out.metrics.append(Metric(NAME, f"projected callbacks/s, {p.hosts} host(s)"
                                  f" (limit: {p.limit})", "1/s", [p.throughput]))  # fmt: skip
    below = Metric(NAME, "PostgreSQL CPU per callback / web's", "x",
                   [d / w for d, w in zip(db.values, web.values, strict=False)],
                   target=("<=", 1.0))  # fmt: skip
    out.metrics.append(below)
    out.notes.append(
        f"cost model ({rate_label}, web + worker on PostgreSQL): web {web.median:.0f} µs, "
        f"worker {worker.median:.0f} µs, PostgreSQL backends {db.median:.0f} µs of CPU per "
        f"callback; a host of {host_cores:g} cores running web + worker carries at most "
        f"{lines[0].per_host:,.0f}/s, a {db_cores:g}-core PostgreSQL server "
        f"{lines[0].db_ceiling:,.0f}/s"
    )
    return out
