"""The knobs of one ``scripts/bench`` run, shared by every scenario.

``--quick`` shrinks durations, sizes and run counts to a smoke test of about a minute or two; the
full run aims to give stable medians within about fifteen minutes. Both keep at least three runs
per scenario, so a min-max is always there to judge the median by.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tools.bench.cpus import Placement
from tools.bench.pgserver import PgServer


@dataclass
class Context:
    root: Path  # the project
    run_dir: Path  # this run's databases and logs (under .bench/)
    cache_dir: Path  # databases kept across runs (.bench/cache)
    quick: bool
    runs: int
    #: closed-loop connections in all, over ``client_processes`` processes
    concurrency: int
    client_processes: int
    clients: ProcessPoolExecutor
    #: seconds of measured load per ingest run, and of warm-up before the first
    ingest_seconds: float
    warmup_seconds: float
    #: pending deliveries per delivery run
    deliveries: int
    #: open-loop rate (callbacks/s) and seconds per latency run
    latency_rate: float
    latency_seconds: float
    #: tasks in the big and the small scale database
    scale_big: int
    scale_small: int
    #: requests per scale measurement (each of list, get) per run
    scale_requests: int
    #: which CPUs the process under test and everything else run on (``tools.bench.cpus``)
    placement: Placement
    #: ``--database postgresql://…``: every scenario also runs on a database of its own there
    database: PgServer | None = None

    @property
    def servers(self) -> list[PgServer | None]:
        """What each scenario runs on, in order: SQLite (None), then PostgreSQL if given."""
        return [None] if self.database is None else [None, self.database]

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"

    @classmethod
    def make(
        cls,
        root: Path,
        run_dir: Path,
        *,
        quick: bool,
        runs: int | None,
        clients: int,
        placement: Placement,
        database: PgServer | None = None,
    ) -> Context:
        from tools.bench.load import client_pool

        return cls(
            root=root,
            run_dir=run_dir,
            cache_dir=root / ".bench" / "cache",
            quick=quick,
            runs=runs or (3 if quick else 5),
            concurrency=64,
            client_processes=clients,
            clients=client_pool(clients),
            ingest_seconds=3.0 if quick else 10.0,
            warmup_seconds=1.0 if quick else 2.0,
            deliveries=5_000 if quick else 30_000,
            latency_rate=500.0,
            latency_seconds=4.0 if quick else 15.0,
            scale_big=100_000 if quick else 1_000_000,
            scale_small=10_000,
            scale_requests=200 if quick else 400,
            placement=placement,
            database=database,
        )
