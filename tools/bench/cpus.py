"""Which CPUs each process runs on: the process under test on one of its own, the stand-ins for
the outside world (load generators, receivers, the bench itself) on the others.

In production the callers and the subscribers are other machines. Here they share the machine,
and left to itself the kernel now and then runs them on the service's CPU: at 500 callbacks/s on
2 CPUs the web + worker deployment's end-to-end p50 was 26-27 ms unpinned against 10-14 ms
pinned, in interleaved runs (``serve``, one process for everything, gained nothing either way).
Every scenario treats both sides of a ratio alike: the bare server and the raw client loop get
the same CPU as the service they are compared with. ``--no-pin`` leaves the placement to the
kernel.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Placement:
    #: for the process under test (and its baseline); ``None``: wherever the kernel likes
    service: frozenset[int] | None
    #: for everything else: the bench's own process, so every child it starts, unless pinned
    rest: frozenset[int] | None

    def describe(self) -> str:
        if self.service is None or self.rest is None:
            return "placement: not pinned (the kernel's choice)"
        return (
            f"placement: the process under test (and its baseline) on CPU {_cpus(self.service)};"
            f" load generators, receivers and the web + worker deployment's worker on CPU "
            f"{_cpus(self.rest)}"
        )


def plan(enabled: bool) -> Placement:
    """The service on the first CPU this process may use, the rest on the others; unpinned
    when disabled or with fewer than two CPUs."""
    cpus = sorted(os.sched_getaffinity(0))
    if not enabled or len(cpus) < 2:
        return Placement(None, None)
    return Placement(frozenset(cpus[:1]), frozenset(cpus[1:]))


def pin(pid: int, cpus: frozenset[int] | None) -> None:
    """Run ``pid`` on ``cpus`` (``pid`` 0: this process). A child pinned right after it starts
    has no threads yet, and the threads it starts later inherit the set."""
    if cpus is not None:
        os.sched_setaffinity(pid, cpus)


def _cpus(cpus: frozenset[int]) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus))
