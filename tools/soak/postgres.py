"""PostgreSQL for the soak: a fresh database per run, and a server of its own to crash.

``--database postgresql://USER@HOST:PORT`` names a server; the soak makes a database called
``th_soak_<random>`` on it for the run and drops it at the end (``--keep-database`` keeps it).
The URL's own database name, if any, is ignored: the soak never writes to an existing one.

Crashing the database in the middle of a run needs a server nobody else uses, so with
``--pg-restart`` (the default on PostgreSQL) the soak does not touch the URL's server at all:
it ``initdb``s a throwaway PostgreSQL into the run directory (trust auth, ``fsync=off`` — it is
crashed by ``pg_ctl stop -m immediate``, not by the machine, so nothing is lost for want of an
fsync), starts it on a free loopback port, and removes it at the end. ``--no-pg-restart`` runs
on the URL's server, in a fresh database, without the restart.

As root (PostgreSQL refuses to run as root) the server's programs run as ``postgres`` through
``runuser``; the binaries are found with ``pg_config`` or under ``/usr/lib/postgresql``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tools.soak.processes import free_port


def fresh_name() -> str:
    return f"th_soak_{secrets.token_hex(4)}"


def _bindir() -> Path:
    found = shutil.which("pg_config")
    if found is not None:
        done = subprocess.run(  # noqa: S603 (pg_config from PATH, fixed argument)
            [found, "--bindir"], capture_output=True, text=True, check=False, timeout=10
        )
        candidate = Path(done.stdout.strip())
        if done.returncode == 0 and (candidate / "initdb").exists():
            return candidate
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts)
    if not versions:
        raise RuntimeError("no PostgreSQL server binaries (initdb) found for --pg-restart")
    return versions[-1].parent


@dataclass
class OwnedServer:
    """A throwaway PostgreSQL server in ``directory``, the soak's to start, crash and remove."""

    directory: Path
    #: where the server's log is copied at the end (it writes it in ``directory``, which is
    #: removed, because the run's directory may be one user ``postgres`` cannot enter)
    keep_log: Path
    port: int = 0
    user: str = "postgres"

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def _as_owner(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    async def _run(self, program: str, *args: str) -> None:
        argv = [*self._as_owner(), str(_bindir() / program), *args]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        if proc.returncode != 0:
            raise RuntimeError(f"{program} {' '.join(args)}: {out.decode()[-2000:]}")

    async def create(self) -> None:
        """initdb and first start, on a free port."""
        self.port = self.port or free_port()
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        else:
            self.user = os.environ.get("USER", "postgres")
        await self._run(
            "initdb", "-D", str(self.directory / "data"), "-A", "trust", "-U", self.user,
            "--no-sync",
        )  # fmt: skip
        await self.start()

    async def start(self) -> None:
        """Start it if it is not running (``pg_ctl status`` answers 3 when it is stopped)."""
        data = str(self.directory / "data")
        status = await asyncio.create_subprocess_exec(
            *self._as_owner(), str(_bindir() / "pg_ctl"), "-D", data, "status",
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        if await status.wait() == 0:
            return
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c max_connections=200"
        )
        await self._run(
            "pg_ctl", "-D", data, "-o", options, "-l", str(self.directory / "server.log"),
            "-w", "-t", "60", "start",
        )  # fmt: skip

    async def stop(self, mode: str = "fast") -> None:
        """``immediate`` is a crash: no checkpoint, clients cut off, recovery at next start."""
        await self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", mode, "-w", "stop")

    async def remove(self) -> None:
        with contextlib.suppress(RuntimeError):  # not running
            await self.stop("immediate")
        with contextlib.suppress(OSError):
            shutil.copyfile(self.directory / "server.log", self.keep_log)
        shutil.rmtree(self.directory, ignore_errors=True)
