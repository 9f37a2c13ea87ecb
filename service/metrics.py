"""Prometheus metrics: one registry per app, and the families ``/metrics`` reports.

Two kinds, read two ways:

- **Observed in this process**: the ``taskhook_delivery_latency_seconds`` histogram, updated
  by the delivery worker as it records each attempt. It holds what *this* process sent since it
  started (Prometheus handles the resets; sum the histograms of every worker across the fleet,
  as is usual for a histogram); a ``web`` process without workers sends nothing, so it stays
  empty there.
- **Read from the database at scrape time**: delivery attempts by outcome (a counter, kept by a
  trigger in the transaction that records them), tasks by status, callbacks by outcome,
  deliveries by status, the delivery queue (due, claimed) and its ages. They are the truth
  whichever process did the work and whichever process is scraped, so they are never kept as
  in-process numbers that could drift or disagree.

The registry is an instance attribute, never module state, so several apps in one process
(tests) never see each other's numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from service.core.delivery import Verdict
from service.core.ledger import TaskStatus
from service.store.base import DELIVERY_STATUSES, OpsCounts

#: the classic text format, which every Prometheus version scrapes
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
#: a webhook answered from the same rack takes milliseconds; the slowest we wait for is the
#: request timeout (production 15 s, at most 300 s: those land in +Inf)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)
#: every callback outcome the table allows (migration 0002)
CALLBACK_OUTCOMES = ("applied", "duplicate", "stale", "rejected", "pending")


class Metrics:
    """One app's metrics. ``observe_latency`` is the delivery worker's hook; ``render`` is the
    ``/metrics`` body for a fresh read of the database."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._latency = Histogram(
            "taskhook_delivery_latency_seconds",
            "Time from sending a delivery to its answer (or timeout, or error), observed by "
            "this process only: sum it across the fleet's worker processes.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe_latency(self, latency_ms: int | None) -> None:
        """One recorded attempt's round trip; ``None`` when nothing was sent (a disabled
        endpoint), so the histogram holds only real round trips. (The attempt itself is counted
        by the database, in the transaction that records it.)"""
        if latency_ms is not None:
            self._latency.observe(latency_ms / 1000)

    def render(self, counts: OpsCounts, now_ms: int) -> bytes:
        """The exposition text: this process's histogram, then the database's families."""
        return generate_latest(_Scrape(self.registry, database_families(counts, now_ms)))


class _Scrape(Collector):
    """One scrape's view: the registry plus gauges read for this scrape only (nothing about
    the database is stored between scrapes)."""

    def __init__(self, registry: CollectorRegistry, extra: list[Metric]) -> None:
        self._registry = registry
        self._extra = extra

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()
        yield from self._extra


def database_families(counts: OpsCounts, now_ms: int) -> list[Metric]:
    """The families read from the database, every known label value present (0 when no
    rows)."""

    def age_s(since_ms: int | None) -> float:
        return 0.0 if since_ms is None else max(0, now_ms - since_ms) / 1000

    attempts = CounterMetricFamily(
        "taskhook_delivery_attempts",
        "Delivery attempts recorded, by outcome (gone: the endpoint answered 410 and was "
        "disabled); every process's, read from the database.",
        labels=["outcome"],
    )
    for key in sorted({*(v.value for v in Verdict), *counts.attempts}):
        attempts.add_metric([key], counts.attempts.get(key, 0))
    return [
        attempts,
        _by_label(
            "taskhook_tasks", "Tasks by status.", "status",
            [str(s) for s in TaskStatus], counts.tasks,
        ),
        _by_label(
            "taskhook_callbacks", "Inbound provider callbacks kept, by outcome.", "outcome",
            CALLBACK_OUTCOMES, counts.callbacks,
        ),
        _by_label(
            "taskhook_deliveries", "Deliveries (one event to one endpoint) by status.", "status",
            DELIVERY_STATUSES, counts.deliveries,
        ),
        GaugeMetricFamily(
            "taskhook_delivery_queue_due",
            "Pending deliveries due now and not claimed: what a worker would pick up next.",
            value=counts.queue_due,
        ),
        GaugeMetricFamily(
            "taskhook_delivery_queue_claimed",
            "Pending deliveries under a live worker lease: being sent now.",
            value=counts.queue_claimed,
        ),
        GaugeMetricFamily(
            "taskhook_delivery_oldest_pending_age_seconds",
            "Age of the oldest pending delivery, retries included (0 when none is pending).",
            value=age_s(counts.oldest_pending_at),
        ),
        GaugeMetricFamily(
            "taskhook_delivery_queue_lag_seconds",
            "How long the longest-waiting due, unclaimed delivery has been due: worker lag "
            "(0 when the queue is empty).",
            value=age_s(counts.oldest_due_at),
        ),
        GaugeMetricFamily(
            "taskhook_mirror_queue",
            "Tasks whose provider succeeded, waiting for the mirror loop to keep their results.",
            value=counts.mirror_jobs,
        ),
    ]  # fmt: skip


def _by_label(
    name: str, help_text: str, label: str, known: Iterable[str], values: dict[str, int]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=[label])
    for key in sorted({*known, *values}):
        family.add_metric([key], values.get(key, 0))
    return family
