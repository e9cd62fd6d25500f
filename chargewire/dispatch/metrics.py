"""Prometheus metrics of delivery: outcomes, attempt duration, publish-to-delivery latency, queue depth."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from chargewire.channels.base import AttemptResult
from chargewire.clock import utcnow
from chargewire.models import DeliveryStatus
from chargewire.store.delivery_store import AttemptRecord, ClaimedDelivery, DeliveryStore

_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


class DeliveryMetrics:
    """The metrics of one process, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._outcome_children: dict[str, tuple[Counter, Histogram]] = {}
        self.attempts = Counter(
            "chargewire_delivery_attempts",
            "Delivery attempts by outcome: delivered, retry (will try again) or failed (kept for resend).",
            ["outcome"],
            registry=self.registry,
        )
        self.attempt_duration = Histogram(
            "chargewire_delivery_attempt_duration_seconds",
            "How long one attempt took, from sending to the receiver's answer or error.",
            ["outcome"],
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.publish_to_delivery = Histogram(
            "chargewire_publish_to_delivery_seconds",
            "From the event being accepted to its successful delivery.",
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "chargewire_delivery_queue_depth",
            "Deliveries waiting: due now, scheduled for a retry later, or failed and kept for resend.",
            ["state"],
            registry=self.registry,
        )

    def observe_attempt(self, delivery: ClaimedDelivery, result: AttemptResult, record: AttemptRecord) -> None:
        """Count one attempt (a dispatcher listener)."""
        counter, durations = self._by_outcome(record.attempt.outcome)
        counter.inc()
        durations.observe(result.duration_ms / 1000)
        if record.status is DeliveryStatus.DELIVERED:
            self.publish_to_delivery.observe((utcnow() - delivery.received_at).total_seconds())

    def _by_outcome(self, outcome: str) -> tuple[Counter, Histogram]:
        # `labels()` looks its child up under a lock on every call; a Kafka worker counts thousands a second.
        children = self._outcome_children.get(outcome)
        if children is None:
            children = self._outcome_children[outcome] = (
                self.attempts.labels(outcome),
                self.attempt_duration.labels(outcome),
            )
        return children

    async def render(self, deliveries: DeliveryStore) -> bytes:
        """The text exposition, with the queue depth read from the database now."""
        counts = await deliveries.count_by_status(utcnow())
        for state in ("due", "scheduled", "failed"):
            self.queue_depth.labels(state).set(counts[state])
        return generate_latest(self.registry)
