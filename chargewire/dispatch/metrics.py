"""Prometheus metrics of delivery: outcomes, attempt duration, publish-to-delivery latency, queue depth."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from datetime import datetime
from itertools import accumulate

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from chargewire.channels.base import AttemptResult
from chargewire.clock import utcnow
from chargewire.dispatch.supervisor import Supervisor, TaskState
from chargewire.models import DeliveryStatus
from chargewire.store.delivery_records import AttemptRecord, ClaimedDelivery
from chargewire.store.delivery_store import DeliveryStore

_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
_BUCKET_LABELS = (*map(floatToGoString, _LATENCY_BUCKETS_S), "+Inf")  # as the exposition format writes them


class DeliveryMetrics(Collector):
    """The metrics of one process, in a registry of its own.

    Attempts are counted in plain numbers on the event loop, which is the only thread that observes or
    renders them: prometheus_client's own metrics take a lock per observation, and a Kafka worker makes
    thousands of observations a second. The registry reads the numbers when `/metrics` is rendered.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._attempts: dict[str, int] = {}
        self._durations: dict[str, _Histogram] = {}
        self._publish_to_delivery = _Histogram()
        self._supervisor: Supervisor | None = None
        self.registry.register(self)
        self.queue_depth = Gauge(
            "chargewire_delivery_queue_depth",
            "Deliveries waiting: due now, scheduled for a retry later, or failed and kept for resend.",
            ["state"],
            registry=self.registry,
        )

    def watch(self, supervisor: Supervisor) -> None:
        """Show the faults and states of this supervisor's loops (this process's worker)."""
        self._supervisor = supervisor

    def observe_attempts(
        self, deliveries: Sequence[ClaimedDelivery], results: Sequence[AttemptResult], records: Sequence[AttemptRecord]
    ) -> None:
        """Count the attempts of one dispatch (a dispatcher listener).

        A Kafka batch's records share their duration and, per publish, their received_at: each distinct value
        is observed once with its count.
        """
        if len(records) == 1:
            # A webhook dispatch, one delivery: counted straight, without the per-value dicts below.
            record = records[0]
            self._observe(record.attempt.outcome, results[0].duration_ms, 1)
            if record.status is DeliveryStatus.DELIVERED:
                self._publish_to_delivery.observe((utcnow() - deliveries[0].received_at).total_seconds())
            return
        now = utcnow()
        delivered = DeliveryStatus.DELIVERED
        # Counted in plain dicts in one pass: a webhook dispatch is one delivery, and two Counters (each a
        # generator, an isinstance through abc and a C helper) cost more than the counting itself.
        outcomes: dict[tuple[str, float], int] = {}
        received: dict[datetime, int] = {}
        for delivery, result, record in zip(deliveries, results, records, strict=True):
            key = (record.attempt.outcome, result.duration_ms)
            outcomes[key] = outcomes.get(key, 0) + 1
            if record.status is delivered:
                received[delivery.received_at] = received.get(delivery.received_at, 0) + 1
        for (outcome, duration_ms), count in outcomes.items():
            self._observe(outcome, duration_ms, count)
        for received_at, count in received.items():
            self._publish_to_delivery.observe((now - received_at).total_seconds(), count)

    def _observe(self, outcome: str, duration_ms: float, count: int) -> None:
        """Count `count` attempts of one outcome and duration."""
        self._attempts[outcome] = self._attempts.get(outcome, 0) + count
        durations = self._durations.get(outcome)
        if durations is None:
            durations = self._durations[outcome] = _Histogram()
        durations.observe(duration_ms / 1000, count)

    def collect(self) -> Iterator[Metric]:
        """The attempts by outcome, their durations, and publish-to-delivery latency."""
        attempts = CounterMetricFamily(
            "chargewire_delivery_attempts",
            "Delivery attempts by outcome: delivered, retry (will try again) or failed (kept for resend).",
            labels=["outcome"],
        )
        durations = HistogramMetricFamily(
            "chargewire_delivery_attempt_duration_seconds",
            "How long one attempt took, from sending to the receiver's answer or error.",
            labels=["outcome"],
        )
        for outcome, count in self._attempts.items():
            attempts.add_metric([outcome], count)
            histogram = self._durations[outcome]
            durations.add_metric([outcome], histogram.cumulative(), histogram.total)
        latency = HistogramMetricFamily(
            "chargewire_publish_to_delivery_seconds", "From the event being accepted to its successful delivery."
        )
        latency.add_metric([], self._publish_to_delivery.cumulative(), self._publish_to_delivery.total)
        yield from (attempts, durations, latency)
        if self._supervisor is not None:
            yield from _supervision(self._supervisor)

    async def render(self, deliveries: DeliveryStore) -> bytes:
        """The text exposition, with the queue depth read from the database now."""
        counts = await deliveries.queue_depth(utcnow())
        for state in ("due", "scheduled", "failed"):
            self.queue_depth.labels(state).set(counts[state])
        return generate_latest(self.registry)


def _supervision(supervisor: Supervisor) -> Iterator[Metric]:
    faults = CounterMetricFamily(
        "chargewire_task_faults",
        "Faults of this process's long-running loops (claim, flush, stream, ...), by loop and error class.",
        labels=["task", "error_class"],
    )
    for (task, error_class), count in sorted(supervisor.faults.items()):
        faults.add_metric([task, error_class], count)
    states = GaugeMetricFamily(
        "chargewire_task_state",
        "1 for the state each of this process's loops is in, 0 for the others.",
        labels=["task", "state"],
    )
    for status in supervisor.statuses():
        for state in TaskState:
            states.add_metric([status.name, state.value], 1.0 if status.state is state else 0.0)
    yield from (faults, states)


class _Histogram:
    """Observations counted per latency bucket, as plain numbers."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_LATENCY_BUCKETS_S) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float, count: int = 1) -> None:
        """Count `value` (`count` times) in the first bucket whose bound it does not exceed."""
        self.counts[bisect_left(_LATENCY_BUCKETS_S, value)] += count
        self.total += value * count

    def cumulative(self) -> list[tuple[str, float]]:
        """(upper bound, observations at or below it) per bucket, as the exposition format wants them."""
        return list(zip(_BUCKET_LABELS, accumulate(self.counts), strict=True))
