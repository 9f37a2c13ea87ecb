"""A PostgreSQL server of the test session's own, to restart for real (the shared one on 5432
is never touched): ``initdb`` into a temporary directory owned by ``postgres``, then ``pg_ctl``
on a free loopback port. Made once per session (initdb takes a few seconds) and removed after.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

BIN = Path("/usr/lib/postgresql/15/bin")


def available() -> str | None:
    """Why a throwaway server cannot be run here (``None`` when it can)."""
    if not (BIN / "initdb").exists():
        return f"no {BIN / 'initdb'}"
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return "needs root and runuser, to run the server as the postgres user"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ThrowawayServer:
    """``start`` / ``stop`` / ``restart`` a server of our own; ``url`` reaches it."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="th_pgfault_"))
        self.data = self.dir / "data"
        self.port = _free_port()
        shutil.chown(self.dir, "postgres", "postgres")
        self._run(BIN / "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync")  # fmt: skip

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: object) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *map(str, argv)],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def _ctl(self, action: str, *extra: str) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c max_connections=50"
        )
        self._run(BIN / "pg_ctl", "-D", self.data, "-o", options, "-l", self.dir / "log",
                  "-w", *extra, action)  # fmt: skip

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        """A fast shutdown: open sessions are ended (``AdminShutdown``) and in-flight work
        rolled back, as when an operator restarts the server."""
        self._ctl("stop", "-m", "fast")

    def remove(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._ctl("stop", "-m", "immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
