"""A subscription's health badge follows its latest outcomes, not any failure of the last day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chargewire.services.overview import health_state
from chargewire.store.delivery_stats import SubscriptionHealth

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def _health(
    delivered_ago: timedelta | None, failed_ago: timedelta | None, failed: int = 0, retrying: int = 0
) -> SubscriptionHealth:
    return SubscriptionHealth(
        "sub_1",
        NOW - delivered_ago if delivered_ago is not None else None,
        NOW - failed_ago if failed_ago is not None else None,
        failed,
        retrying,
    )


def test_a_receiver_whose_refusals_later_succeeded_is_healthy() -> None:
    assert health_state(_health(timedelta(seconds=2), None, retrying=3), NOW) == "healthy"


def test_a_receiver_that_delivered_after_its_last_failure_is_healthy() -> None:
    assert health_state(_health(timedelta(seconds=2), timedelta(hours=3), failed=1), NOW) == "healthy"


def test_a_receiver_whose_latest_final_outcome_is_a_failure_is_failing() -> None:
    assert health_state(_health(timedelta(hours=1), timedelta(minutes=1), failed=1), NOW) == "failing"


def test_a_receiver_retrying_with_nothing_delivered_lately_is_failing() -> None:
    assert health_state(_health(timedelta(minutes=30), None, retrying=5), NOW) == "failing"
    assert health_state(_health(None, None, retrying=5), NOW) == "failing"


def test_a_subscription_without_deliveries_is_idle() -> None:
    assert health_state(None, NOW) == "idle"
    assert health_state(_health(None, None), NOW) == "idle"
