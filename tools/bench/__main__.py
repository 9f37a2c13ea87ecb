"""``scripts/bench [--quick] [--strict] [--runs N] [--only …] [--database postgresql://…]``.

Runs the scenarios in order (ingest, delivery, latency, scale; memory is read from the first
three), prints the table and writes ``.bench/results.json``. Exits 0 whatever the figures are,
unless ``--strict``: then a missed target or a failed check is exit 1. Each run's databases and
process logs are under ``.bench/run/`` (replaced by the next run); the large scale database is
cached in ``.bench/cache/``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Awaitable, Callable, Sequence

import uvloop

from service.store.postgres.admin import is_postgres_url as is_postgres
from tools.bench import costs, cpus, delivery, ingest, latency, report, scale
from tools.bench.context import Context
from tools.bench.load import CLIENT, OPEN_LOOP_CLIENT
from tools.bench.pgserver import PgServer
from tools.bench.processes import ROOT
from tools.bench.results import Metric, Outcome
from tools.bench.wrkload import WRK

SCENARIOS = ("ingest", "delivery", "latency", "latency-split", "scale")
MEMORY = "5 memory"
MEMORY_TARGET_MB = 200.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a ~1-2 minute smoke run")
    parser.add_argument("--strict", action="store_true", help="exit 1 on a missed target")
    parser.add_argument("--runs", type=int, help="runs per scenario (default 5, quick 3)")
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help=f"comma-separated subset of {SCENARIOS}"
    )
    parser.add_argument(
        "--clients", type=int, default=2, help="load-generator processes (default 2)"
    )
    parser.add_argument(
        "--database", metavar="postgresql://USER@HOST:PORT[/DB]",
        help="also run every scenario on PostgreSQL: a fresh database per scenario on this "
        "server (created and dropped by the bench), each figure beside SQLite's",
    )  # fmt: skip
    parser.add_argument(
        "--no-pin", action="store_true",
        help="leave CPU placement to the kernel (default: the service on a CPU of its own)",
    )  # fmt: skip
    return parser


async def _main(args: argparse.Namespace) -> Outcome:
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"scripts/bench: unknown scenario(s) {sorted(unknown)}")
    run_dir = ROOT / ".bench" / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    placement = cpus.plan(not args.no_pin)
    # Before the client pool starts: every process the bench starts runs where it does, unless
    # it is the one under test.
    cpus.pin(0, placement.rest)
    database = None
    if args.database:
        if not is_postgres(args.database):
            raise SystemExit("scripts/bench: --database takes a postgresql:// URL")
        database = PgServer(args.database)
        if not await database.reachable():
            raise SystemExit(f"scripts/bench: PostgreSQL at {database.admin_url} is unreachable")
    ctx = Context.make(ROOT, run_dir, quick=args.quick, runs=args.runs, clients=args.clients,
                       placement=placement, database=database)  # fmt: skip
    total = Outcome()
    load_before = os.getloadavg()[0]
    closed = f"wrk ({WRK})" if WRK else f"{CLIENT} (wrk is not on PATH)"
    total.notes.append(f"load generator: closed loops {closed}; open loop {OPEN_LOOP_CLIENT}")
    total.notes.append(placement.describe())
    steps: dict[str, Callable[[Context], Awaitable[tuple[Outcome, float | None]]]] = {
        "ingest": ingest.run,
        "delivery": delivery.run,
        "latency": latency.run,
        "latency-split": latency.run_split,
        "scale": scale.run,
    }
    memories: list[Metric] = []
    try:
        for name in only:
            started = time.monotonic()
            print(f"[bench] {name} …", file=sys.stderr, flush=True)
            found, peak = await steps[name](ctx)
            total.extend(found)
            if peak is not None:
                process = {"delivery": "worker", "latency-split": "web"}.get(name, "serve")
                memories.append(
                    Metric(MEMORY, f"peak RSS of {process} in {name} (VmHWM)", "MiB", [peak],
                           target=("<=", MEMORY_TARGET_MB))
                )  # fmt: skip
            print(f"[bench] {name} done in {time.monotonic() - started:.0f} s",
                  file=sys.stderr, flush=True)  # fmt: skip
    finally:
        ctx.clients.shutdown()
    total.metrics.extend(memories)
    cores = float(os.cpu_count() or 1)  # the bench itself is pinned to a subset by now
    total.extend(costs.model(total, rate_label=f"at {ctx.latency_rate:g}/s", host_cores=cores,
                             db_cores=cores))  # fmt: skip
    total.notes.append(
        f"machine: {os.cpu_count()} CPUs; 1-minute load average {load_before:.2f} at the start, "
        f"{os.getloadavg()[0]:.2f} at the end (other work on the machine moves every figure)"
    )
    return total


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    source = report.source_state(ROOT)
    started = time.monotonic()
    outcome = uvloop.run(_main(args))
    seconds = time.monotonic() - started
    print(report.table(outcome))
    print(f"\n{'quick' if args.quick else 'full'} run took {seconds:.0f} s", end="")
    dirty = source["uncommitted"]
    print(
        f"; tree at {str(source['commit'])[:10]}" + (f" with uncommitted {dirty}" if dirty else "")
    )
    path = ROOT / ".bench" / "results.json"
    report.write_json(path, outcome, source=source, argv=sys.argv, seconds=seconds)
    print(f"results: {path.relative_to(ROOT)}")
    misses = report.missed(outcome)
    if args.strict and misses:
        print("strict: " + "; ".join(misses), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
