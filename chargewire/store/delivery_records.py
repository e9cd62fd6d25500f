"""What the delivery paths hand each other: a delivery claimed for an attempt, and the record of that attempt.

The dispatcher and the Kafka streamer make them; the delivery queue (`delivery_store`), the stream store and
the owner of the `deliveries` table's writes (`delivery_writes`) write them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from chargewire.models import Attempt, DeliveryStatus
from chargewire.store.attempt_text import bare_attempt


@dataclass(slots=True)  # not frozen: one is built per record, and a frozen one takes 5x as long
class ClaimedDelivery:
    """A due delivery leased to one worker, with the event bytes it carries."""

    id: str
    event_id: str
    subscription_id: str
    event_name: str
    attempt_count: int
    attempt_limit: int | None
    payload: bytes
    entity_id: str | None
    received_at: datetime


@dataclass(slots=True)  # not frozen: one is built per record, and a frozen one takes 5x as long
class AttemptRecord:
    """The outcome of one attempt, to be written with the delivery's new state."""

    attempt: Attempt
    subscription_id: str
    worker_id: str
    status: DeliveryStatus
    next_attempt_at: datetime | None
    last_error: str | None


def bare_record(record: AttemptRecord) -> AttemptRecord:
    """`record` with its attempt stripped of everything from outside (`attempt_text.bare_attempt`)."""
    return replace(record, attempt=bare_attempt(record.attempt))


def unrecordable_record(record: AttemptRecord) -> AttemptRecord:
    """`record` as a failed delivery, when not even its bare attempt is taken: kept for resend, not sent again."""
    attempt = replace(
        bare_attempt(record.attempt), outcome="failed", error_class="unrecordable", error_message=UNRECORDABLE
    )
    return replace(record, attempt=attempt, status=DeliveryStatus.FAILED, next_attempt_at=None, last_error=UNRECORDABLE)


UNRECORDABLE = "The database refused this attempt's record; the delivery is failed so that it is not sent forever."


def first_retry_at(records: Sequence[AttemptRecord]) -> datetime | None:
    """When the first of these records' deliveries that stay pending falls due again; None when none does."""
    return min(
        (r.next_attempt_at for r in records if r.status is DeliveryStatus.PENDING and r.next_attempt_at), default=None
    )
