"""Read-only figures about deliveries for the back office: subscription health and the recent delivery window.

Recent attempts are found by primary key: attempt ids are time-ordered (`chargewire.ids`), so the smallest id
possible at a moment bounds the window without an index on `started_at`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Float, and_, case, cast, func, select

from chargewire.models import DeliveryStatus
from chargewire.store.database import Database
from chargewire.store.tables import attempts, deliveries, subscriptions

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_BODY_LENGTH = 26
_RANDOM_BITS = 80
_MINUTE_FORMAT = "%Y-%m-%d %H:%M"


@dataclass(frozen=True, slots=True)
class SubscriptionHealth:
    """How a subscription's deliveries have gone lately."""

    subscription_id: str
    last_delivered_at: datetime | None
    last_failed_at: datetime | None
    failed_recently: int
    retrying_recently: int


@dataclass(frozen=True, slots=True)
class OutcomeCount:
    """How many attempts of one outcome started in one minute."""

    minute: datetime
    outcome: str
    count: int


@dataclass(frozen=True, slots=True)
class LatencyBucket:
    """How many deliveries of one minute took at most `bounds[bucket]` seconds (the last bucket: longer)."""

    minute: datetime
    bucket: int
    count: int


@dataclass(frozen=True, slots=True)
class FailureCount:
    """A subscription's failed attempts in the window."""

    subscription_id: str
    failures: int
    last_failure_at: datetime


def first_id_at(prefix: str, moment: datetime) -> str:
    """The smallest id with `prefix` that can be made at `moment`: every id made later sorts at or after it.

    Follows the layout of `chargewire.ids` (26 Crockford base32 characters: the milliseconds, then 80 random
    bits), with the random bits all zero; a unit test holds the two together.
    """
    value = int(moment.timestamp() * 1000) << _RANDOM_BITS
    chars = []
    for _ in range(_BODY_LENGTH):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


class DeliveryStats:
    """Aggregates over `deliveries` and `attempts`; never writes."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def subscription_health(self, subscription_ids: Sequence[str], since: datetime) -> list[SubscriptionHealth]:
        """Last delivered and failed times, and failed or retrying deliveries created since `since`."""
        if not subscription_ids:
            return []

        def of_status(status: DeliveryStatus, *extra: ColumnElement[bool]) -> ColumnElement[bool]:
            # Each subquery is a range of ix_deliveries_log (subscription_id, status, created_at).
            return and_(deliveries.c.subscription_id == subscriptions.c.id, deliveries.c.status == status.value, *extra)

        def latest(status: DeliveryStatus) -> ColumnElement[datetime]:
            return select(func.max(deliveries.c.created_at)).where(of_status(status)).scalar_subquery()

        def recent(status: DeliveryStatus, *extra: ColumnElement[bool]) -> ColumnElement[int]:
            condition = of_status(status, deliveries.c.created_at >= since, *extra)
            return select(func.count()).select_from(deliveries).where(condition).scalar_subquery()

        query = select(
            subscriptions.c.id,
            latest(DeliveryStatus.DELIVERED).label("last_delivered_at"),
            latest(DeliveryStatus.FAILED).label("last_failed_at"),
            recent(DeliveryStatus.FAILED).label("failed"),
            recent(DeliveryStatus.PENDING, deliveries.c.attempt_count > 0).label("retrying"),
        ).where(subscriptions.c.id.in_(list(subscription_ids)))
        async with self._database.reading() as connection:
            rows = (await connection.execute(query)).all()
        # max() over a subquery loses the column type on SQLite, so the times come back as text there.
        return [
            SubscriptionHealth(
                row.id, _moment(row.last_delivered_at), _moment(row.last_failed_at), row.failed, row.retrying
            )
            for row in rows
        ]

    async def attempts_by_minute(self, since: datetime) -> list[OutcomeCount]:
        """Attempts started since `since`, counted per minute and outcome."""
        minute, _ = _minute_and_latency(self._database.is_sqlite)
        query = (
            select(minute.label("minute"), attempts.c.outcome, func.count().label("total"))
            .where(*_window(since))
            .group_by(minute, attempts.c.outcome)
        )
        async with self._database.reading() as connection:
            rows = (await connection.execute(query)).all()
        return [OutcomeCount(_parse_minute(row.minute), row.outcome, row.total) for row in rows]

    async def latency_by_minute(self, since: datetime, bounds: Sequence[float]) -> list[LatencyBucket]:
        """Delivered attempts since `since` per minute, in histogram buckets of publish-to-delivery seconds."""
        minute, latency = _minute_and_latency(self._database.is_sqlite)
        bucket = case(*((latency <= bound, index) for index, bound in enumerate(bounds)), else_=len(bounds))
        query = (
            select(minute.label("minute"), bucket.label("bucket"), func.count().label("total"))
            .join_from(attempts, deliveries, deliveries.c.id == attempts.c.delivery_id)
            .where(*_window(since), attempts.c.outcome == "delivered")
            .group_by(minute, bucket)
        )
        async with self._database.reading() as connection:
            rows = (await connection.execute(query)).all()
        return [LatencyBucket(_parse_minute(row.minute), int(row.bucket), row.total) for row in rows]

    async def failures_by_subscription(self, since: datetime, limit: int) -> list[FailureCount]:
        """The subscriptions with the most failed attempts since `since`."""
        failures = func.count().label("failures")
        query = (
            select(deliveries.c.subscription_id, failures, func.max(attempts.c.started_at).label("last_failure_at"))
            .join_from(attempts, deliveries, deliveries.c.id == attempts.c.delivery_id)
            .where(*_window(since), attempts.c.outcome != "delivered")
            .group_by(deliveries.c.subscription_id)
            .order_by(failures.desc(), deliveries.c.subscription_id)
            .limit(limit)
        )
        async with self._database.reading() as connection:
            rows = (await connection.execute(query)).all()
        return [FailureCount(row.subscription_id, row.failures, _moment(row.last_failure_at) or since) for row in rows]


def _window(since: datetime) -> tuple[ColumnElement[bool], ...]:
    return attempts.c.id >= first_id_at("att", since), attempts.c.started_at >= since


def _minute_and_latency(is_sqlite: bool) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """Marked dialect difference: an attempt's minute as 'YYYY-MM-DD HH:MM' text, and seconds from the
    delivery's creation (the publish) to the end of the attempt. SQLite keeps datetimes as ISO text."""
    finished_s = cast(attempts.c.duration_ms, Float) / 1000.0
    if is_sqlite:
        minute = func.strftime(_MINUTE_FORMAT, attempts.c.started_at)
        elapsed = (func.julianday(attempts.c.started_at) - func.julianday(deliveries.c.created_at)) * 86400.0
        return minute, elapsed + finished_s
    minute = func.to_char(func.date_trunc("minute", attempts.c.started_at), "YYYY-MM-DD HH24:MI")
    elapsed = func.extract("epoch", attempts.c.started_at - deliveries.c.created_at)
    return minute, elapsed + finished_s


def _parse_minute(text: str) -> datetime:
    return datetime.strptime(text, _MINUTE_FORMAT).replace(tzinfo=UTC)


def _moment(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
