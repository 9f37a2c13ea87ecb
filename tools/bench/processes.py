"""Start, wait for, measure and stop the real processes a scenario needs.

Everything listens on 127.0.0.1 on a port picked free just before start. Each process logs to
its own file under the run directory (not a pipe: a pipe nobody reads fills up and stalls the
process mid-benchmark), and that file's tail is shown when a process fails to come up. Memory and
CPU are read from ``/proc`` so they describe exactly the process that served, not a wrapper.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import aiohttp

from tools.bench import cpus as cpu_placement

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick; reused at once by the caller)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def service_env(data_dir: Path, secret_key: str, **overrides: str) -> dict[str, str]:
    """The environment a ``python -m service`` process runs with: the production config
    (``config/default.toml``: FULL fsync, JSON logs at info) with loopback targets allowed and
    the simulator on (the provider every scenario's tasks and callbacks are for), plus
    ``overrides`` (``TASKHOOK__SECTION__KEY`` style). Inherited ``TASKHOOK*`` variables are
    dropped so a developer's shell cannot change what is measured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKHOOK")}
    env.update(
        TASKHOOK_CONFIG=str(ROOT / "config" / "default.toml"),
        TASKHOOK_DATA_DIR=str(data_dir),
        TASKHOOK_SECRET_KEY=secret_key,
        TASKHOOK_HOST="127.0.0.1",
        TASKHOOK__DELIVERY__ALLOWED_NETWORKS="127.0.0.0/8",
        TASKHOOK__SIMULATOR__ENABLED="true",
    )
    env.update(overrides)
    return env


def new_secret_key() -> str:
    return secrets.token_urlsafe(48)


@dataclass
class Proc:
    """One child process; a context manager that always stops it."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    #: the CPUs it runs on (``tools.bench.cpus``); ``None``: the bench process's own
    cpus: frozenset[int] | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(  # noqa: S603 (our own interpreter and modules)
                list(self.argv),
                env=dict(self.env),
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C on the bench does not hit it half-way
            )
        cpu_placement.pin(self.popen.pid, self.cpus)
        return self

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise RuntimeError(f"{self.name} was not started")
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def vm_hwm_mb(self) -> float | None:
        """Peak resident memory so far (``VmHWM``), in MiB; ``None`` once the process is gone."""
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return None

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far (0 once the process is gone)."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return 0.0
        fields = stat.rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``; the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def __enter__(self) -> Proc:
        if self.popen is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


async def wait_ready(proc: Proc, url: str, within_s: float = 60.0) -> None:
    """Poll ``url`` until it answers 200; fail with the process's log if it exits first."""
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as session:
        while True:
            if not proc.alive:
                raise RuntimeError(f"{proc.name} exited during start-up:\n{proc.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                    if response.status == 200:
                        return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name} not ready after {within_s} s:\n{proc.log_tail()}")
            await asyncio.sleep(0.05)


def serve(
    name: str,
    data_dir: Path,
    secret_key: str,
    port: int,
    log_dir: Path,
    *,
    cpus: frozenset[int] | None = None,
    **env: str,
) -> Proc:
    """``python -m service serve`` (uvicorn, uvloop, httptools, one process, no access log)."""
    return Proc(
        name,
        [PYTHON, "-m", "service", "serve", "--host", "127.0.0.1", "--port", str(port)],
        service_env(data_dir, secret_key, **env),
        log_dir / f"{name}.log",
        cpus,
    )


def worker(
    name: str,
    data_dir: Path,
    secret_key: str,
    log_dir: Path,
    *,
    cpus: frozenset[int] | None = None,
    **env: str,
) -> Proc:
    """``python -m service worker``: the Procfile's ``worker:`` line."""
    return Proc(
        name,
        [PYTHON, "-m", "service", "worker"],
        service_env(data_dir, secret_key, **env),
        log_dir / f"{name}.log",
        cpus,
    )


def tool(
    name: str,
    module: str,
    args: Sequence[str],
    log_dir: Path,
    *,
    cpus: frozenset[int] | None = None,
) -> Proc:
    """One of this package's own processes (the bare server, the receiver, the raw sender)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKHOOK")}
    return Proc(name, [PYTHON, "-m", module, *args], env, log_dir / f"{name}.log", cpus)
