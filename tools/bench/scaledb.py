"""The scale databases: a month of history for N tasks, built once and cached.

The shape is what a service that has run for a while holds. Four accounts share the tasks; each
has an endpoint for every event and one for terminal events only. A finished task has its four
events (queued, submitted, running, succeeded/failed — one in twenty fails, and is refunded),
five deliveries and their attempts, four timeline entries and two callbacks; payloads are all
within the retention window, so none is purged (the largest the files get). A few operator
replays bring deliveries to exactly five per task. One delivery in a thousand waits for a
retry after a 500. The newest 256 tasks are still in flight, and their deliveries are due now —
the same backlog whatever the history, so a claim measures the history's weight alone.

A built database is kept in ``.bench/cache/scale-<N>-<key>/`` (``taskhook.db`` and
``build.json`` with the API key, the secret key its endpoint secrets are sealed under, and what
was built). The key hashes the service's migration
files and ``SHAPE``, so a schema change or a new shape rebuilds it, and anything else (the
service's code included) reuses it: building the million-task one takes minutes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from service.core.clock import system_clock
from service.core.ledger import TaskStatus
from tools.bench import processes, seed

IN_FLIGHT = 256
DELIVERIES_PER_TASK = 5
ACCOUNTS = 4
SPAN_MS = 30 * 86_400_000
_IN_FLIGHT_CYCLE = (TaskStatus.QUEUED, TaskStatus.SUBMITTED, TaskStatus.RUNNING)
#: the version of what a build writes (rows, payload templates, ids): part of the cache key
SHAPE = "scale-v3"  # v3: endpoint secrets sealed, the key kept in build.json


@dataclass(frozen=True)
class ScaleDb:
    tasks: int
    data_dir: Path  # holds taskhook.db (what TASKHOOK_DATA_DIR names)
    api_key: str  # account 0's key
    account_id: str
    secret_key: str  # the TASKHOOK_SECRET_KEY its endpoint secrets are sealed under
    tables: dict[str, int]
    size_bytes: int
    build_seconds: float
    cached: bool

    @property
    def path(self) -> Path:
        return self.data_dir / "taskhook.db"


def cache_key() -> str:
    """A hash of the service's migration files and of ``SHAPE``: a schema change rebuilds the
    databases, and so does a change to what a build writes (bump ``SHAPE``)."""
    digest = hashlib.sha256(SHAPE.encode())
    migrations = resources.files("service.store.migrations")
    for entry in sorted(migrations.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            digest.update(entry.name.encode() + b"\0" + entry.read_bytes())
    return digest.hexdigest()[:12]


def status_of(count: int) -> Callable[[int], TaskStatus]:
    def status(i: int) -> TaskStatus:
        if i >= count - IN_FLIGHT:
            return _IN_FLIGHT_CYCLE[i % 3]
        return TaskStatus.FAILED if i % 20 == 0 else TaskStatus.SUCCEEDED

    return status


def plan(count: int, now_ms: int) -> seed.Plan:
    status = status_of(count)
    in_flight = min(IN_FLIGHT, count)
    finished = count - in_flight
    # A finished task makes 5 deliveries (4 events to the all-events endpoint, 1 to the other);
    # one in flight 1-3 (its events so far, to the first only). Replays of finished tasks' last
    # events make up the difference, so the history holds exactly 5 deliveries per task.
    in_flight_deliveries = sum(seed.path_length(status(i)) for i in range(finished, count))
    short = DELIVERIES_PER_TASK * in_flight - in_flight_deliveries
    return seed.Plan(
        count=count, start_ms=now_ms - SPAN_MS, spacing_ms=SPAN_MS / count, status_of=status,
        history=True, retry_every=1000, retry_at_ms=now_ms + 3_600_000, due_from=finished,
        replays=short, replay_every=max(1, finished // max(short, 1)),
    )  # fmt: skip


def _endpoints(n: int) -> list[seed.EndpointSpec]:
    return [
        (f"https://hooks.example.com/{n}/all", None),
        (f"https://hooks.example.com/{n}/done", ("task.succeeded", "task.failed")),
    ]


def _cached(data_dir: Path) -> ScaleDb | None:
    manifest = data_dir / "build.json"
    if not (manifest.exists() and (data_dir / "taskhook.db").exists()):
        return None
    found = json.loads(manifest.read_text())
    return ScaleDb(**found, data_dir=data_dir, cached=True)


def _builds(cache_dir: Path, count: int) -> list[Path]:
    return list(cache_dir.glob(f"scale-{count}-*"))


async def get(cache_dir: Path, count: int) -> ScaleDb:
    """The cached database of ``count`` tasks, built now if there is none for this tree."""
    data_dir = cache_dir / f"scale-{count}-{cache_key()}"
    cached = _cached(data_dir)
    if cached is not None:
        return cached
    for stale in _builds(cache_dir, count):
        shutil.rmtree(stale, ignore_errors=True)  # an older tree's build: never used again
    started = time.monotonic()
    now = system_clock()
    secret_key = processes.new_secret_key()
    accounts, _counts = await seed.build(
        data_dir / "taskhook.db", [_endpoints(n) for n in range(ACCOUNTS)], plan(count, now),
        lambda: now - SPAN_MS - 60_000, secret_key=secret_key,
    )  # fmt: skip
    built = ScaleDb(
        tasks=count, data_dir=data_dir, api_key=accounts[0].api_key,
        account_id=accounts[0].id, secret_key=secret_key,
        tables=seed.table_counts(data_dir / "taskhook.db"),
        size_bytes=seed.size_bytes(data_dir / "taskhook.db"),
        build_seconds=round(time.monotonic() - started, 1), cached=False,
    )  # fmt: skip
    record = asdict(built)
    del record["data_dir"], record["cached"]
    (data_dir / "build.json").write_text(json.dumps(record, indent=2) + "\n")
    return built
