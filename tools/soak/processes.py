"""The service under test as the Procfile runs it: separate ``web`` and ``worker`` processes
(one of each on SQLite, replicas of both on PostgreSQL), plus the provider simulator in a
process of its own.

The simulator runs alone because it stands for the provider: a real provider keeps its jobs
(and keeps retrying its callbacks, then answers polls) while our ``web`` is down. Mounted inside
``web`` it would die with every ``web`` kill, and every task in flight would be lost upstream
rather than recovered, which is not the failure the soak means to test.

Each process runs in its own session, so a kill takes its whole group and nothing else; output
goes to one log file per process, appended across restarts.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from service.settings import PROJECT_ROOT


def free_port() -> int:
    """A loopback port nobody holds right now (the child binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Ports:
    #: one per ``web`` process
    webs: tuple[int, ...]
    #: the round-robin balancer in front of the webs: where clients and the ingress go
    balancer: int
    simulator: int
    #: the soak's ingress: the public address callbacks and provider calls are minted on
    ingress: int

    @classmethod
    def pick(cls, webs: int = 1) -> Ports:
        return cls(tuple(free_port() for _ in range(webs)), free_port(), free_port(), free_port())


@dataclass(frozen=True)
class Secrets:
    """Fresh per run; the soak knows them only to start the processes."""

    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    simulator: str = field(
        default_factory=lambda: "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    )


def service_env(
    data_dir: Path,
    ports: Ports,
    keys: Secrets,
    overrides: dict[str, str],
    database_url: str | None = None,
) -> dict[str, str]:
    """The dev config, a fresh data dir, the ingress as public URL, the soak's overrides, and
    the database (None: SQLite in the data dir)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKHOOK")}
    env.update(
        TASKHOOK_CONFIG=str(PROJECT_ROOT / "config" / "dev.toml"),
        TASKHOOK_DATA_DIR=str(data_dir),
        TASKHOOK_SECRET_KEY=keys.secret_key,
        TASKHOOK_SIMULATOR_SECRET=keys.simulator,
        TASKHOOK_PUBLIC_URL=f"http://127.0.0.1:{ports.ingress}",
        TASKHOOK_LOG_FORMAT="json",
        TASKHOOK_LOG_LEVEL="info",
        PYTHONUNBUFFERED="1",
    )
    if database_url is not None:
        env["TASKHOOK_DATABASE_URL"] = database_url
    env.update(overrides)
    return env


@dataclass
class Proc:
    """One restartable child process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    #: a URL answering (anything but a 5xx) once the process serves; None for the worker
    health_url: str | None = None
    #: for a process without a health URL, the log event that says it is up (a worker is not
    #: up when it is merely running: it may still be connecting to its database)
    ready_event: str | None = None
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0
    #: where this start's output begins in ``log``
    _log_from: int = 0

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        if self.alive:
            return
        self._log_from = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            out.write(f"\n--- soak: start #{self.starts + 1} at {time.time():.3f}\n".encode())
            out.flush()
            self.process = subprocess.Popen(  # noqa: S603 (our own interpreter, fixed argv)
                self.argv,
                env=self.env,
                cwd=PROJECT_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL the process group: no shutdown handlers, no flushing, like a crash."""
        if self.process is None or not self.alive:
            return
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.kills += 1

    def stop(self) -> int | None:
        """SIGTERM and wait (a clean shutdown); SIGKILL if it will not go. The exit code."""
        if self.process is None:
            return None
        if self.alive:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        return self.process.returncode

    def _logged(self, event: str) -> bool:
        with self.log.open("rb") as log:
            log.seek(self._log_from)
            return f'"event":"{event}"'.encode() in log.read()

    async def ready(self, timeout_s: float = 30.0) -> None:
        """Wait until the process serves (or, for the worker, has logged that it started)."""
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=1.0, trust_env=False) as client:
            while True:
                if not self.alive:
                    raise RuntimeError(f"{self.name} exited: see {self.log}")
                if self.health_url is None:
                    if self.ready_event is None or self._logged(self.ready_event):
                        return
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{self.name} did not come up in {timeout_s} s")
                    await asyncio.sleep(0.1)
                    continue
                try:
                    if (await client.get(self.health_url)).status_code < 500:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not come up in {timeout_s} s")
                await asyncio.sleep(0.1)


@dataclass
class Service:
    """``web`` and ``worker`` (one or more of each), and the simulator, with the environment
    they share."""

    env: dict[str, str]
    ports: Ports
    logs: Path
    workers_count: int = 1
    webs: list[Proc] = field(init=False)
    workers: list[Proc] = field(init=False)
    simulator: Proc = field(init=False)

    def __post_init__(self) -> None:
        py = [sys.executable, "-m", "service"]
        many = len(self.ports.webs) > 1
        self.webs = [
            Proc(
                f"web-{i + 1}" if many else "web",
                [*py, "serve", "--host", "127.0.0.1", "--port", str(port)],
                self.env | {"TASKHOOK__WORKERS__IN_SERVE": "false"},  # as the Procfile's web:
                self.logs / (f"web-{i + 1}.log" if many else "web.log"),
                f"http://127.0.0.1:{port}/healthz",
            )
            for i, port in enumerate(self.ports.webs)
        ]
        many = self.workers_count > 1
        self.workers = [
            Proc(
                f"worker-{i + 1}" if many else "worker",
                [*py, "worker"],
                self.env,
                self.logs / (f"worker-{i + 1}.log" if many else "worker.log"),
                ready_event="worker.started",
            )
            for i in range(self.workers_count)
        ]
        self.simulator = Proc(
            "simulator",
            [*py, "simulator", "--port", str(self.ports.simulator)],
            self.env,
            self.logs / "simulator.log",
            f"http://127.0.0.1:{self.ports.simulator}/api/v1/jobs/recordInfo?taskId=none",
        )

    @property
    def web_url(self) -> str:
        """The balancer in front of every ``web``."""
        return f"http://127.0.0.1:{self.ports.balancer}"

    @property
    def all(self) -> tuple[Proc, ...]:
        return (*self.webs, *self.workers, self.simulator)

    async def start(self) -> None:
        for proc in self.all:
            proc.start()
        await asyncio.gather(*(proc.ready() for proc in self.all))

    def stop(self) -> dict[str, int | None]:
        """Clean shutdown of everything still running; the exit codes by name."""
        order = (*self.workers, *self.webs, self.simulator)
        return {proc.name: proc.stop() for proc in order}

    async def cli(self, *args: str) -> str:
        """``python -m service …`` against the same data dir; its last line of stdout."""
        return (await self.cli_full(*args)).splitlines()[-1]

    async def cli_full(self, *args: str) -> str:
        """``python -m service …`` against the same data dir; all of its stdout."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "service", *args,
            env=self.env, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        if proc.returncode != 0:
            raise RuntimeError(f"taskhook {' '.join(args)} failed: {err.decode()[-2000:]}")
        return out.decode().strip()
