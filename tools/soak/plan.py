"""How long, how hard, and with which settings a soak runs.

The service runs with ``config/dev.toml`` (loopback targets allowed, timings in seconds) and
a few overrides. Two fit the delivery schedule to a run of minutes:

- a delivery retry schedule a little longer than dev's four attempts in 7 s, so a flaky
  subscriber (about 40 % failed answers) or a short outage is ridden out by retries rather than
  by exhausting the schedule on nearly every run (exhaustion still happens now and then, and the
  soak then recovers those deliveries the documented way, ``POST /v1/endpoints/{id}/recover``);
- a 2 s request timeout instead of 5 s, so silent subscribers cost seconds, not the run.

Two make the limits bite now and then, so their answers are soaked too: a rate limit per key
low enough that the busiest account's bursts (its submissions, garbage and subscriber calls
together, a few a second) sometimes go past it, and an in-flight cap per account that a worker
outage (tasks pile up while it is down) can reach. Every client honours ``Retry-After``
(``tools.soak.api``); the load retries a ``too_many_tasks`` as it does a busy answer.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEDULE_SECONDS = (0, 1, 2, 4, 8, 8)
REQUEST_TIMEOUT_S = 2
#: requests a second per key, and the burst (dev.toml's is far above anything the soak sends)
RATE_LIMIT = (8, 16)
MAX_IN_FLIGHT = 12
#: the share of the simulator's result images that misbehave (a third each: 500 a time or two,
#: 404 for good, slow): tasks end only once their images are kept, or fail result_unavailable
IMAGE_FAULTS = 0.15


@dataclass(frozen=True)
class Plan:
    #: the sustained load phase, faults and garbage included
    load_s: float
    #: the most the drain may take before the checks run anyway (and fail what is left)
    drain_s: float
    #: new tasks per second, across all accounts
    task_rate: float
    #: garbage requests per second
    garbage_rate: float
    #: seconds between fault injections (a random wait in this range)
    fault_every_s: tuple[float, float]
    seed: int

    @classmethod
    def quick(cls, seed: int) -> Plan:
        return cls(
            load_s=30, drain_s=30, task_rate=4, garbage_rate=6, fault_every_s=(2.5, 5), seed=seed
        )

    @classmethod
    def minutes(cls, minutes: float, seed: int) -> Plan:
        return cls(
            load_s=minutes * 60,
            drain_s=120,
            task_rate=3,
            garbage_rate=5,
            fault_every_s=(4, 12),
            seed=seed,
        )

    @property
    def overrides(self) -> dict[str, str]:
        return {
            "TASKHOOK__DELIVERY__SCHEDULE_SECONDS": ",".join(map(str, SCHEDULE_SECONDS)),
            "TASKHOOK__DELIVERY__REQUEST_TIMEOUT_SECONDS": str(REQUEST_TIMEOUT_S),
            "TASKHOOK__API__RATE_LIMIT": str(RATE_LIMIT[0]),
            "TASKHOOK__API__RATE_LIMIT_BURST": str(RATE_LIMIT[1]),
            "TASKHOOK__TASKS__MAX_IN_FLIGHT_PER_ACCOUNT": str(MAX_IN_FLIGHT),
            "TASKHOOK__SIMULATOR__IMAGE_FAULTS": str(IMAGE_FAULTS),
            # retries of a transient image well inside the drain; a killed worker's job back
            # within seconds
            "TASKHOOK__ASSETS__DOWNLOAD_ATTEMPTS": "8",
            "TASKHOOK__ASSETS__BACKOFF_BASE_MS": "100",
            "TASKHOOK__ASSETS__BACKOFF_MAX_MS": "1000",
            "TASKHOOK__ASSETS__LEASE_SECONDS": "5",
        }

    @property
    def silence_s(self) -> float:
        """How long a receiver's "timeout" answer stays silent: past the sender's timeout."""
        return REQUEST_TIMEOUT_S + 1.0
