"""The record of an attempt's outcome: a pure function of what happened and when, if ever, it is tried again."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from chargewire.channels.base import AttemptResult
from chargewire.models import Attempt, DeliveryStatus
from chargewire.store.delivery_records import AttemptRecord, ClaimedDelivery


def record_for(
    delivery: ClaimedDelivery, result: AttemptResult, attempt_id: str, worker_id: str, retry_at: datetime | None
) -> AttemptRecord:
    """What to write for one attempt: delivered; else pending until `retry_at`, or failed when there is none."""
    attempt = Attempt(
        id=attempt_id,
        delivery_id=delivery.id,
        number=delivery.attempt_count + 1,
        started_at=result.started_at,
        duration_ms=result.duration_ms,
        outcome="delivered",
        status_code=result.status_code,
        request_headers=result.request_headers,
        response_headers=result.response_headers,
        response_body=result.response_body,
    )
    if result.error is None:
        return AttemptRecord(attempt, delivery.subscription_id, worker_id, DeliveryStatus.DELIVERED, None, None)
    failed = retry_at is None
    attempt = replace(
        attempt,
        outcome="failed" if failed else "retry",
        error_class=result.error.error_class,
        error_message=result.error.message,
    )
    status = DeliveryStatus.FAILED if failed else DeliveryStatus.PENDING
    return AttemptRecord(attempt, delivery.subscription_id, worker_id, status, retry_at, result.error.message)
