"""The record of an attempt follows from its result and its retry time alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chargewire.channels.base import AttemptResult
from chargewire.dispatch.outcomes import record_for
from chargewire.errors import PermanentDeliveryError, RetryableDeliveryError
from chargewire.models import DeliveryStatus
from chargewire.store.delivery_records import ClaimedDelivery

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
DELIVERY = ClaimedDelivery("dlv_1", "evt_1", "sub_1", "BootNotification", 2, None, b"{}", None, NOW)


def test_a_result_without_an_error_is_recorded_delivered_as_the_next_attempt_number() -> None:
    record = record_for(
        DELIVERY, AttemptResult(started_at=NOW, duration_ms=3.0, status_code=200), "att_1", "wrk_1", None
    )

    assert (record.status, record.attempt.outcome, record.attempt.number) == (DeliveryStatus.DELIVERED, "delivered", 3)
    assert (record.next_attempt_at, record.attempt.error_class) == (None, None)


def test_an_error_with_a_retry_time_is_recorded_pending_until_then() -> None:
    error = RetryableDeliveryError("The receiver answered 503.", error_class="http_503")
    retry_at = NOW + timedelta(seconds=30)

    record = record_for(
        DELIVERY, AttemptResult(started_at=NOW, duration_ms=3.0, error=error), "att_1", "wrk_1", retry_at
    )

    assert (record.status, record.attempt.outcome, record.next_attempt_at) == (
        DeliveryStatus.PENDING,
        "retry",
        retry_at,
    )
    assert (record.attempt.error_class, record.attempt.error_message) == ("http_503", "The receiver answered 503.")


def test_an_error_without_a_retry_time_is_recorded_failed() -> None:
    error = PermanentDeliveryError("The receiver answered 410.", error_class="http_410")

    record = record_for(DELIVERY, AttemptResult(started_at=NOW, duration_ms=3.0, error=error), "att_1", "wrk_1", None)

    assert (record.status, record.attempt.outcome, record.next_attempt_at) == (DeliveryStatus.FAILED, "failed", None)
