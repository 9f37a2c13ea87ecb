"""Waking a worker in another process when its work was committed here.

``serve`` with its own workers wakes them in-process (``workers.Waker``). With the Procfile's
split — ``web`` and ``worker`` — the deliveries a callback writes in ``web`` would otherwise
wait for the worker's idle poll (``workers.idle_poll_ms``, a second in production). So ``web``
also sends a one-byte datagram to a Unix socket the worker listens on, named after the
database file: ``d`` (deliveries were written) or ``s`` (a task was queued, and its event).

On PostgreSQL none of this is used: commits notify workers on every host through
``LISTEN/NOTIFY`` (``service.store.postgres.notify``); :func:`wake_loops` is what both kinds of
listener hand a wake-up to.

Best effort by design: a lost datagram, a worker that is down, or a second worker that could
not bind the name only means waiting for the idle poll, as before. The name is in Linux's
abstract namespace (no file to clean up after a SIGKILL); elsewhere this is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import sys
from collections.abc import Callable
from pathlib import Path

from service.logs import get_logger
from service.workers import DELIVERY, SUBMITTER, Waker

log = get_logger("taskhook.wakeup")

_SUPPORTED = sys.platform.startswith("linux")


def wake_address(database_path: Path) -> str:
    """The abstract socket name for the workers of one database file."""
    digest = hashlib.sha256(str(database_path.resolve()).encode()).hexdigest()[:24]
    return f"\0taskhook-wake-{digest}"


def wake_loops(waker: Waker) -> Callable[[bytes], None]:
    """What a listener calls with each wake-up it receives: ``s`` wakes every loop, ``d`` the
    delivery loop; anything else is ignored."""

    def wake(what: bytes) -> None:
        if what == SUBMITTER:
            waker.submitter.set()
            waker.delivery.set()
        elif what == DELIVERY:
            waker.delivery.set()

    return wake


class WakeSender:
    """What ``web`` calls after a commit that gave the worker something to do."""

    def __init__(self, address: str) -> None:
        self._address = address
        self._sock: socket.socket | None = None
        if _SUPPORTED:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)

    def send(self, what: bytes) -> None:
        if self._sock is None:
            return
        # No listener, a full queue: the worker's idle poll picks the work up instead.
        with contextlib.suppress(OSError):
            self._sock.sendto(what, self._address)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class WakeListener:
    """The worker's end: each datagram wakes the loops it names."""

    def __init__(self, address: str, waker: Waker) -> None:
        self._address = address
        self._wake = wake_loops(waker)
        self._sock: socket.socket | None = None

    def start(self) -> bool:
        """Listen; False (and the worker polls) if unsupported or another worker listens."""
        if not _SUPPORTED:
            return False
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(self._address)
        except OSError as exc:
            sock.close()
            log.warning("wakeup.not_listening", reason=str(exc))
            return False
        sock.setblocking(False)
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)
        self._sock = sock
        return True

    def _readable(self) -> None:
        assert self._sock is not None
        for _ in range(256):  # drain what is queued, without starving the loop
            try:
                what = self._sock.recv(16)
            except (BlockingIOError, InterruptedError):
                return
            self._wake(what)

    def close(self) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
