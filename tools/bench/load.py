"""The Python load generators: closed loops when ``wrk`` is not installed, and the open loop.

Two shapes. ``closed_loop`` (aiohttp) keeps ``concurrency`` requests in flight for a fixed time
and counts what completed: the maximum throughput. ``open_loop`` (``rawhttp``: half the CPU
aiohttp took, on the CPU it shares with the worker and the receiver) sends at fixed,
pre-computed times whatever the server does: the latency at an offered load. A closed loop waits
for slow answers and so hides them (coordinated omission), which is why latency is never
measured with one.

Requests are prepared before the clock starts (each callback is a distinct, signed body), so the
client spends its time on HTTP. The client's own CPU use is reported: a client near 100 % of its
core is the bottleneck, and the figure is a floor for the server, not its ceiling.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import aiohttp
import uvloop

from tools.bench.rawhttp import RawClient, encode_post
from tools.bench.results import percentile

CLIENT = "aiohttp (Python asyncio)"
OPEN_LOOP_CLIENT = "a raw HTTP/1.1 client (Python asyncio, httptools)"


@dataclass(frozen=True)
class Request:
    """One prepared POST: the path, its headers and body, and a tag (e.g. the task id)."""

    path: str
    headers: Mapping[str, str]
    body: bytes
    tag: str = ""


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0  # 2xx
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # no HTTP answer at all
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    #: the prepared requests ran out before the time did
    exhausted: bool = False
    #: CPU seconds this process used per second of the run (1.0 = one core busy)
    client_cpu: float = 0.0
    #: open loop only: how late the sends went out behind their schedule, in ms
    send_lag_ms: list[float] = field(default_factory=list)
    #: tags of the requests answered 2xx, with the time they were due to be sent
    sent_at: dict[str, float] = field(default_factory=dict)
    #: wall-clock span of the run (to combine the results of several client processes)
    started_wall: float = 0.0
    finished_wall: float = 0.0
    #: latency percentiles (ms) a client reported itself, when it keeps no per-request list
    percentiles: dict[int, float] = field(default_factory=dict)
    #: requests that may have reached the server with no answer waited for (wrk stops at its
    #: time with a request out on each connection); the Python clients wait for every answer
    cut_off: int = 0

    def latency_p(self, q: int) -> float:
        """The ``q``-th percentile of the 2xx answers' latency, in ms."""
        if q in self.percentiles:
            return self.percentiles[q]
        return percentile(self.latencies_ms, q)

    def answered(self, status: int, started: float) -> float | None:
        """Count one answer; its latency in ms if it was 2xx (``started``: ``perf_counter``)."""
        self.statuses[status] += 1
        if 200 <= status < 300:
            self.ok += 1
            return (time.perf_counter() - started) * 1000
        return None

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def failed(self) -> int:
        return self.sent - self.ok


def _session(limit: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit, ttl_dns_cache=None),
        timeout=aiohttp.ClientTimeout(total=60),
        trust_env=False,
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
    )


async def _post(
    session: aiohttp.ClientSession, base: str, req: Request, result: LoadResult
) -> float | None:
    """Send one; record its status; return its latency in ms if it was answered 2xx."""
    started = time.perf_counter()
    result.sent += 1
    try:
        async with session.post(base + req.path, data=req.body, headers=req.headers) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        result.errors[type(exc).__name__] += 1
        return None
    return result.answered(status, started)


async def closed_loop(
    base: str,
    requests: Sequence[Request],
    *,
    concurrency: int,
    duration_s: float,
    start_at: float | None = None,
) -> LoadResult:
    """Keep ``concurrency`` requests in flight for ``duration_s`` (or until ``requests`` run
    out); ``elapsed_s`` runs from the first send to the last answer. ``start_at`` (wall clock)
    lines several client processes up on one start."""
    result = LoadResult()
    queue = iter(requests)
    async with _session(concurrency) as session:
        if start_at is not None:
            await asyncio.sleep(max(0.0, start_at - time.time()))
        result.started_wall = time.time()
        cpu0, started = time.process_time(), time.perf_counter()
        deadline = started + duration_s
        finished = started

        async def one_connection() -> None:
            nonlocal finished
            while time.perf_counter() < deadline:
                req = next(queue, None)
                if req is None:
                    result.exhausted = True
                    return
                latency = await _post(session, base, req, result)
                if latency is not None:
                    result.latencies_ms.append(latency)
                finished = max(finished, time.perf_counter())

        await asyncio.gather(*(one_connection() for _ in range(concurrency)))
        result.elapsed_s = finished - started
        result.finished_wall = result.started_wall + result.elapsed_s
        result.client_cpu = (time.process_time() - cpu0) / max(result.elapsed_s, 1e-9)
    return result


def _closed_loop_child(
    base: str, requests: Sequence[Request], concurrency: int, duration_s: float, start_at: float
) -> LoadResult:
    """One client process's share (runs in a spawned process, on uvloop)."""
    return uvloop.run(
        closed_loop(
            base, requests, concurrency=concurrency, duration_s=duration_s, start_at=start_at
        )
    )


def client_pool(processes: int) -> ProcessPoolExecutor:
    """Client processes for ``closed_loop_parallel``, started once and reused across runs.
    Spawned, not forked: forking a process with a running event loop copies its state."""
    import multiprocessing

    return ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"))


async def closed_loop_parallel(
    pool: ProcessPoolExecutor,
    processes: int,
    base: str | Sequence[str],
    requests: Sequence[Request],
    *,
    concurrency: int,
    duration_s: float,
) -> LoadResult:
    """``closed_loop`` split over ``processes`` client processes (one Python client tops out
    near one core, below what a bare uvicorn serves): each gets every n-th request and
    ``concurrency / processes`` connections, and all start at the same instant. With several
    ``base`` addresses (two web processes), client process ``i`` sends to ``base[i % n]``."""
    bases = [base] if isinstance(base, str) else list(base)
    loop = asyncio.get_running_loop()
    start_at = time.time() + 1.0
    share = max(1, concurrency // processes)
    parts = await asyncio.gather(
        *(
            loop.run_in_executor(
                pool, _closed_loop_child, bases[i % len(bases)], requests[i::processes], share,
                duration_s,
                start_at,
            )
            for i in range(processes)
        )
    )  # fmt: skip
    return merge(parts)


def merge(parts: Sequence[LoadResult]) -> LoadResult:
    """One result for several client processes that ran side by side."""
    total = LoadResult()
    for part in parts:
        total.sent += part.sent
        total.ok += part.ok
        total.statuses.update(part.statuses)
        total.errors.update(part.errors)
        total.latencies_ms.extend(part.latencies_ms)
        total.exhausted = total.exhausted or part.exhausted
        total.client_cpu += part.client_cpu
    total.started_wall = min(p.started_wall for p in parts)
    total.finished_wall = max(p.finished_wall for p in parts)
    total.elapsed_s = total.finished_wall - total.started_wall
    return total


async def open_loop(
    base: str,
    requests: Sequence[Request],
    *,
    rate: float,
    max_in_flight: int = 1024,
) -> LoadResult:
    """Send ``requests[i]`` at ``start + i / rate`` whatever happened to the earlier ones, and
    wait for all answers. ``sent_at[tag]`` is the scheduled send time (``perf_counter``) of each
    request answered 2xx, so latency measured from it includes any queueing in the client."""
    result = LoadResult()
    pending: set[asyncio.Task[None]] = set()
    client = RawClient(base, max_in_flight)
    prepared = [encode_post(base, req.path, req.headers, req.body) for req in requests]

    async def send(req: Request, data: bytes, due: float) -> None:
        result.send_lag_ms.append((time.perf_counter() - due) * 1000)
        started = time.perf_counter()
        result.sent += 1
        try:
            status = await client.send(data)
        except Exception as exc:  # counted, never lost: the scenario checks every one was 2xx
            result.errors[type(exc).__name__] += 1
            return
        latency = result.answered(status, started)
        if latency is not None:
            result.latencies_ms.append(latency)
            result.sent_at[req.tag] = due

    try:
        cpu0 = time.process_time()
        start = time.perf_counter() + 0.05
        for i, (req, data) in enumerate(zip(requests, prepared, strict=True)):
            due = start + i / rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            task = asyncio.create_task(send(req, data, due))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending)
        result.elapsed_s = time.perf_counter() - start
        result.client_cpu = (time.process_time() - cpu0) / max(result.elapsed_s, 1e-9)
    finally:
        client.close()
    return result
