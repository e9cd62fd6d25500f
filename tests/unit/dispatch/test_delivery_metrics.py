"""Delivery metrics as Prometheus reads them: attempts by outcome, attempt durations, publish-to-delivery latency."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from chargewire.clock import utcnow
from chargewire.dispatch.metrics import DeliveryMetrics
from chargewire.models import DeliveryStatus


def _attempt(metrics: DeliveryMetrics, outcome: str, duration_ms: float, age_s: float = 0.0) -> None:
    delivered = outcome == "delivered"
    delivery: Any = SimpleNamespace(received_at=utcnow() - timedelta(seconds=age_s))
    result: Any = SimpleNamespace(duration_ms=duration_ms)
    status = DeliveryStatus.DELIVERED if delivered else DeliveryStatus.PENDING
    record: Any = SimpleNamespace(attempt=SimpleNamespace(outcome=outcome), status=status)
    metrics.observe_attempts([delivery], [result], [record])


def _samples(metrics: DeliveryMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_attempts_are_counted_by_outcome() -> None:
    metrics = DeliveryMetrics()
    for outcome in ("delivered", "delivered", "retry", "failed"):
        _attempt(metrics, outcome, 3.0)

    samples = _samples(metrics)

    assert samples[("chargewire_delivery_attempts_total", (("outcome", "delivered"),))] == 2
    assert samples[("chargewire_delivery_attempts_total", (("outcome", "retry"),))] == 1
    assert samples[("chargewire_delivery_attempts_total", (("outcome", "failed"),))] == 1


def test_attempt_durations_fill_cumulative_buckets_with_their_sum() -> None:
    metrics = DeliveryMetrics()
    for duration_ms in (4.0, 5.0, 20.0, 7000.0):
        _attempt(metrics, "delivered", duration_ms)

    samples = _samples(metrics)

    def bucket(le: str) -> float:
        return samples[("chargewire_delivery_attempt_duration_seconds_bucket", (("le", le), ("outcome", "delivered")))]

    cumulative = {le: bucket(le) for le in ("0.005", "0.01", "0.025", "5.0", "10.0", "+Inf")}
    assert cumulative == {"0.005": 2, "0.01": 2, "0.025": 3, "5.0": 3, "10.0": 4, "+Inf": 4}
    delivered = (("outcome", "delivered"),)
    assert samples[("chargewire_delivery_attempt_duration_seconds_count", delivered)] == 4
    assert samples[("chargewire_delivery_attempt_duration_seconds_sum", delivered)] == pytest.approx(7.029)


def test_publish_to_delivery_latency_counts_successes_only() -> None:
    metrics = DeliveryMetrics()
    _attempt(metrics, "delivered", 1.0, age_s=2.0)
    _attempt(metrics, "retry", 1.0, age_s=2.0)

    samples = _samples(metrics)

    assert samples[("chargewire_publish_to_delivery_seconds_count", ())] == 1
    assert samples[("chargewire_publish_to_delivery_seconds_bucket", (("le", "1.0"),))] == 0
    assert samples[("chargewire_publish_to_delivery_seconds_bucket", (("le", "2.5"),))] == 1


def test_a_batch_dispatch_counts_every_attempt_when_its_deliveries_share_duration_and_publish_time() -> None:
    metrics = DeliveryMetrics()
    published = utcnow() - timedelta(seconds=2)
    outcomes = ("delivered", "delivered", "retry")
    deliveries: Any = [SimpleNamespace(received_at=published) for _outcome in outcomes]
    results: Any = [SimpleNamespace(duration_ms=30.0) for _outcome in outcomes]
    records: Any = [
        SimpleNamespace(
            attempt=SimpleNamespace(outcome=outcome),
            status=DeliveryStatus.DELIVERED if outcome == "delivered" else DeliveryStatus.PENDING,
        )
        for outcome in outcomes
    ]

    metrics.observe_attempts(deliveries, results, records)

    samples = _samples(metrics)
    assert samples[("chargewire_delivery_attempts_total", (("outcome", "delivered"),))] == 2
    assert samples[("chargewire_delivery_attempt_duration_seconds_sum", (("outcome", "delivered"),))] == 0.06
    assert samples[("chargewire_delivery_attempt_duration_seconds_count", (("outcome", "retry"),))] == 1
    assert samples[("chargewire_publish_to_delivery_seconds_count", ())] == 2
