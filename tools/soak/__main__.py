"""``python -m tools.soak [--minutes N | --quick] [--database URL]``: run the soak and exit
non-zero if any check fails.

On SQLite (the default) one ``web`` and one ``worker``; with ``--database postgresql://…`` two
of each (``--webs``, ``--workers``) behind a round-robin balancer, in a fresh database, and —
unless ``--no-pg-restart`` — on a PostgreSQL server of the soak's own that is crashed and
started again mid-run (see ``tools.soak.postgres``: the URL's server is never restarted).

One run: start the processes on fresh ports and a fresh data dir; create the customers; then,
all at once for the load phase, submit tasks, inject faults, send garbage and let subscribers
come and go; drain; read everything back and check it. The figures and checks are printed and
kept in ``report.json`` beside the processes' logs and the database, under ``.soak/`` by default.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from service.settings import PROJECT_ROOT, load_settings
from service.store.postgres.admin import (
    create_database,
    drop_database,
    with_database,
)
from service.store.postgres.admin import (
    is_postgres_url as is_postgres,
)
from tools.soak import checks_assets, checks_delivery, checks_tasks, db, logs
from tools.soak.accounts import create_accounts, customers, register
from tools.soak.api import Api
from tools.soak.balancer import Balancer
from tools.soak.drain import drain, heal
from tools.soak.faults import Faults
from tools.soak.forgery import Forgery
from tools.soak.garbage import Garbage
from tools.soak.ingress import Ingress
from tools.soak.load import Load
from tools.soak.plan import IMAGE_FAULTS, Plan
from tools.soak.postgres import OwnedServer, fresh_name
from tools.soak.processes import Ports, Secrets, Service, service_env
from tools.soak.receivers import Receiver
from tools.soak.report import Check, Report
from tools.soak.subscribers import Subscribers


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=3.0, help="load phase (default 3)")
    parser.add_argument("--quick", action="store_true", help="about a minute in all, for CI")
    parser.add_argument("--seed", type=int, help="random seed (default: new each run)")
    parser.add_argument("--dir", type=Path, help="where data, logs and report go")
    parser.add_argument(
        "--database",
        metavar="URL",
        help="sqlite (default: a file in the run's data dir) or postgresql://USER@HOST:PORT",
    )
    parser.add_argument(
        "--pg-restart",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="on PostgreSQL: run a server of the soak's own and crash it mid-run (default);"
        " --no-pg-restart uses the URL's server, without the restart",
    )
    parser.add_argument("--keep-database", action="store_true", help="do not drop it at the end")
    parser.add_argument("--webs", type=int, help="web processes (default 1 on SQLite, 2 on PG)")
    parser.add_argument("--workers", type=int, help="workers (default 1 on SQLite, 2 on PG)")
    args = parser.parse_args(argv)
    if args.database in (None, "sqlite"):
        args.database = None
    elif not is_postgres(args.database):
        parser.error("--database: sqlite or postgresql://USER@HOST:PORT")
    replicas = 2 if args.database else 1
    args.webs = args.webs or replicas
    args.workers = args.workers or replicas
    return args


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)  # noqa: S311
    plan = Plan.quick(seed) if args.quick else Plan.minutes(args.minutes, seed)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = args.dir or PROJECT_ROOT / ".soak" / f"run-{stamp}"
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    print(f"soak: seed {seed}, load {plan.load_s:.0f} s, files in {run_dir}", flush=True)
    report = asyncio.run(on_database(args, plan, run_dir))
    print(report.render(), flush=True)
    report.save(run_dir / "report.json")
    return 0 if report.ok else 1


async def on_database(args: argparse.Namespace, plan: Plan, run_dir: Path) -> Report:
    """The soak on the database ``args`` names: made fresh for the run, removed after it."""
    if args.database is None:
        return await soak(plan, run_dir, Topology(args.webs, args.workers))
    owned: OwnedServer | None = None
    server_url = args.database
    name = fresh_name()
    try:
        if args.pg_restart:
            owned = OwnedServer(
                Path(tempfile.mkdtemp(prefix="th-soak-pg-")), run_dir / "logs" / "postgresql.txt"
            )
            await owned.create()
            server_url = owned.url
        url = await create_database(server_url, name)
        where = "a server of its own, crashed mid-run" if owned else "the URL's server"
        print(f"soak: PostgreSQL database {name} on {where}", flush=True)
        topology = Topology(args.webs, args.workers, url, owned)
        report = await soak(plan, run_dir, topology)
        report.sections["run"]["database"] = f"PostgreSQL, {where}"
        return report
    finally:
        if owned is not None:
            if args.keep_database:
                print(f"soak: kept, running: {with_database(owned.url, name)}", flush=True)
            else:
                await owned.remove()
        elif not args.keep_database and not args.pg_restart:
            await drop_database(server_url, name)


@dataclass(frozen=True)
class Topology:
    """How many of each process, and on which database (None: SQLite in the data dir)."""

    webs: int
    workers: int
    database_url: str | None = None
    #: the PostgreSQL server to crash mid-run, when the soak owns one
    owned: OwnedServer | None = None


async def soak(plan: Plan, run_dir: Path, topology: Topology) -> Report:
    started = time.monotonic()
    rng = random.Random(plan.seed)  # noqa: S311 (reproducible chaos, not secrets)
    ports = Ports.pick(topology.webs)
    env = service_env(run_dir / "data", ports, Secrets(), plan.overrides, topology.database_url)
    settings = load_settings(env)
    source: db.Source = topology.database_url or settings.storage.database_path
    service = Service(env, ports, run_dir / "logs", topology.workers)
    balancer = Balancer(list(ports.webs))
    ingress = Ingress(service.web_url, f"http://127.0.0.1:{ports.simulator}")
    api = Api(service.web_url)
    accounts = customers()
    report = Report()
    try:
        await balancer.start(ports.balancer)
        await ingress.start(ports.ingress)
        await service.cli("db", "migrate")
        revoked, _ = await asyncio.gather(create_accounts(service, accounts), service.start())
        for account in accounts:
            for spec in account.specs:
                await register(api, account, spec, rng, plan.silence_s)
        receivers = [r for a in accounts for r in a.receivers]
        faults = Faults(service, receivers, rng, plan.fault_every_s, topology.owned)
        load = Load(api, accounts, rng)
        forgery = Forgery(ingress, rng)
        garbage = Garbage(api, accounts, revoked, load, forgery, rng)
        subscribers = Subscribers(api, accounts, faults, rng, plan.silence_s)
        since_ms = int(time.time() * 1000) - 1000
        setup_s = time.monotonic() - started
        print(f"soak: set up in {setup_s:.1f} s; load for {plan.load_s:.0f} s", flush=True)
        await asyncio.gather(
            faults.run(plan.load_s),
            load.run(plan.load_s, plan.task_rate, settle_s=15),
            garbage.run(plan.load_s, plan.garbage_rate),
            subscribers.run(plan.load_s),
        )
        load_s = time.monotonic() - started - setup_s
        print(f"soak: load done in {load_s:.1f} s; draining", flush=True)
        heal(faults.receivers)
        await faults.heal()
        drained = await drain(source, api, accounts, since_ms, plan.drain_s)
        snap = await db.read(source)
        report.checks = [
            checks_tasks.tasks_accounted(snap, load, settings.upstream, IMAGE_FAULTS),
            checks_tasks.ledgers_legal(snap),
            await checks_tasks.credits_balance(snap, api, accounts),
            checks_tasks.callbacks_sound(snap, ingress, forgery),
            await checks_assets.results_kept(snap, api, accounts, IMAGE_FAULTS),
            checks_delivery.every_event_delivered(snap, accounts),
            checks_delivery.delivery_table_sound(snap, settings.delivery),
            checks_delivery.endpoints_intact(snap, accounts),
            _processes_check(faults),
            _garbage_check(garbage),
            _load_check(load),
            _limits_check(api, load),
            _unavailable_check(api),
        ]
        report.sections = {
            "run": {
                "seed": plan.seed,
                "service under test": _revision(),
                "database": "PostgreSQL" if topology.database_url else "SQLite",
                "processes": f"{topology.webs} web, {topology.workers} worker, behind a balancer",
                "setup s": round(setup_s, 1),
                "load s": round(load_s, 1),
                "drain s": drained.seconds,
                "left open after drain (tasks, pending deliveries)": (
                    f"{drained.open_tasks}, {drained.pending}"
                ),
                "exhausted deliveries recovered": drained.recovered,
            },
            "load": load.figures(),
            "faults": {
                **dict(sorted(faults.counts.items())),
                **{f"receiver answers {k}": v for k, v in sorted(_answers(receivers).items())},
                "process starts": ", ".join(f"{p.name} {p.starts}" for p in service.all),
            },
            "balancer": {f"connections to {k}": v for k, v in sorted(balancer.connections.items())},
            "subscribers": dict(sorted(subscribers.counts.items())),
            "garbage": garbage.figures(),
            "ingress": {f"{k} {s}": n for (k, s), n in sorted(ingress.answers.items())},
        }
        report.details["faults"] = [f"t+{at} s {what}" for at, what in faults.log]
    finally:
        codes = service.stop()
        await api.close()
        await ingress.close()
        await balancer.close()
        with (run_dir / "receivers.jsonl").open("w") as out:
            for account in accounts:
                for receiver in account.receivers:
                    await receiver.close()
                    out.writelines(json.dumps(r) + "\n" for r in receiver.records())
    report.checks.append(logs.scan(run_dir / "logs"))
    report.sections.setdefault("run", {})["total s"] = round(time.monotonic() - started, 1)
    report.sections["run"]["exit codes on SIGTERM"] = ", ".join(
        f"{k} {v}" for k, v in codes.items()
    )
    return report


def _revision() -> str:
    """The commit the processes ran, and whether ``service/`` differed from it (work in
    progress is soaked as it stands, and the report should say so)."""
    try:
        head = _git("rev-parse", "--short", "HEAD").strip()
        dirty = _git("status", "--porcelain", "--", "service").splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    changed = [line[3:] for line in dirty if line.strip()]
    return head + (f" + uncommitted {', '.join(changed)}" if changed else "")


def _git(*args: str) -> str:
    command = ["git", *args]  # git from PATH, fixed arguments
    done = subprocess.run(  # noqa: S603 (our own fixed command)
        command, cwd=PROJECT_ROOT, capture_output=True, text=True, check=True, timeout=10
    )
    return done.stdout


def _answers(receivers: list[Receiver]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for r in receivers:
        total.update({f"{r.profile} {k}": v for k, v in r.answers.items()})
    return dict(total)


def _garbage_check(garbage: Garbage) -> Check:
    check = Check("garbage never got a 5xx, nor an answer the contract forbids")
    for r in garbage.results:
        if r.status is not None and r.status >= 500:
            check.problems.append(f"5xx: {r.kind} {r.method} {r.path} → {r.status} {r.detail}")
        elif r.status is not None and not r.expected:
            check.problems.append(f"{r.kind} {r.method} {r.path} → {r.status} {r.detail}")
    check.figures["garbage answered"] = sum(1 for r in garbage.results if r.status is not None)
    return check


def _processes_check(faults: Faults) -> Check:
    check = Check("no process died but those the soak killed")
    faults.watch()
    check.problems.extend(
        f"{what}: {n}" for what, n in faults.counts.items() if what.startswith("unexpected")
    )
    return check


def _limits_check(api: Api, load: Load) -> Check:
    check = Check("rate-limited answers carried what the contract says (and were waited out)")
    check.problems.extend(api.limited.problems)
    check.figures |= {
        "429 rate_limited waited out": api.limited.answers,
        "seconds waited on Retry-After": round(api.limited.waited_s, 1),
        "2xx /v1 answers with RateLimit-* checked": api.limited.quotas_seen,
        "429 too_many_tasks to submissions": sum(
            s.answers.count("429 too_many_tasks") for s in load.submissions
        ),
    }
    return check


def _unavailable_check(api: Api) -> Check:
    check = Check("a database away answered 503 store_unavailable with Retry-After (waited out)")
    check.problems.extend(api.unavailable.problems)
    check.figures |= {
        "503 store_unavailable waited out": api.unavailable.answers,
        "seconds waited on Retry-After": round(api.unavailable.waited_s, 1),
        **{f"503 to {k}": v for k, v in sorted(api.unavailable.routes.items())},
    }
    return check


def _load_check(load: Load) -> Check:
    check = Check("valid submissions were answered as the contract says")
    check.problems.extend(load.wrong)
    return check


if __name__ == "__main__":
    sys.exit(main())
