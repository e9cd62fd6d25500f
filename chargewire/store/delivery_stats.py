"""Read-only figures about deliveries for the back office: subscription health and the recent delivery window.

Recent attempts are found by primary key: attempt ids are time-ordered (`chargewire.ids`), so the smallest id
possible at a moment bounds the window without an index on `started_at`. A streamed Kafka batch that
delivered is one `attempt_batches` row (its id an attempt id) standing for one delivered attempt per record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Float, Select, Table, and_, case, cast, func, select

from chargewire.models import DeliveryStatus
from chargewire.store.database import Database
from chargewire.store.dialects import StoreDialect
from chargewire.store.dialects.base import MINUTE_FORMAT
from chargewire.store.tables import attempt_batches, attempts, deliveries, subscriptions

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_BODY_LENGTH = 26
_RANDOM_BITS = 80


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
    """Aggregates over `deliveries`, `attempts` and `attempt_batches`; never writes."""

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
        """Attempts started since `since`, counted per minute and outcome (a streamed batch's, per record)."""
        minute, _ = _minute_and_latency(self._database.dialect, attempts)
        query = (
            select(minute.label("minute"), attempts.c.outcome, func.count().label("total"))
            .where(*_window(attempts, since))
            .group_by(minute, attempts.c.outcome)
        )
        batch_minute, _ = _minute_and_latency(self._database.dialect, attempt_batches)
        batched = (
            select(batch_minute.label("minute"), func.sum(attempt_batches.c.records).label("total"))
            .where(*_window(attempt_batches, since))
            .group_by(batch_minute)
        )
        async with self._database.reading() as connection:
            counts = {(row.minute, row.outcome): row.total for row in (await connection.execute(query)).all()}
            for row in (await connection.execute(batched)).all():
                counts[row.minute, "delivered"] = counts.get((row.minute, "delivered"), 0) + int(row.total)
        return [OutcomeCount(_parse_minute(minute), outcome, total) for (minute, outcome), total in counts.items()]

    async def latency_by_minute(self, since: datetime, bounds: Sequence[float]) -> list[LatencyBucket]:
        """Delivered attempts since `since` per minute, in histogram buckets of publish-to-delivery seconds."""
        counts: dict[tuple[str, int], int] = {}
        async with self._database.reading() as connection:
            for query in (self._attempt_latency(since, bounds), self._batch_latency(since, bounds)):
                for row in (await connection.execute(query)).all():
                    counts[row.minute, int(row.bucket)] = counts.get((row.minute, int(row.bucket)), 0) + row.total
        return [LatencyBucket(_parse_minute(minute), bucket, total) for (minute, bucket), total in counts.items()]

    def _attempt_latency(self, since: datetime, bounds: Sequence[float]) -> Select[Any]:
        minute, latency = _minute_and_latency(self._database.dialect, attempts)
        bucket = _bucket(latency, bounds)
        return (
            select(minute.label("minute"), bucket.label("bucket"), func.count().label("total"))
            .join_from(attempts, deliveries, deliveries.c.id == attempts.c.delivery_id)
            .where(*_window(attempts, since), attempts.c.outcome == "delivered")
            .group_by(minute, bucket)
        )

    def _batch_latency(self, since: datetime, bounds: Sequence[float]) -> Select[Any]:
        """As `_attempt_latency`, for the records of streamed batches: each is a primary-key range of deliveries."""
        minute, latency = _minute_and_latency(self._database.dialect, attempt_batches)
        bucket = _bucket(latency, bounds)
        batch_deliveries = and_(
            deliveries.c.id.between(attempt_batches.c.first_delivery_id, attempt_batches.c.last_delivery_id),
            deliveries.c.attempt_batch_id == attempt_batches.c.id,
        )
        return (
            select(minute.label("minute"), bucket.label("bucket"), func.count().label("total"))
            .join_from(attempt_batches, deliveries, batch_deliveries)
            .where(*_window(attempt_batches, since))
            .group_by(minute, bucket)
        )

    async def failures_by_subscription(self, since: datetime, limit: int) -> list[FailureCount]:
        """The subscriptions with the most failed attempts since `since`."""
        failures = func.count().label("failures")
        query = (
            select(deliveries.c.subscription_id, failures, func.max(attempts.c.started_at).label("last_failure_at"))
            .join_from(attempts, deliveries, deliveries.c.id == attempts.c.delivery_id)
            .where(*_window(attempts, since), attempts.c.outcome != "delivered")
            .group_by(deliveries.c.subscription_id)
            .order_by(failures.desc(), deliveries.c.subscription_id)
            .limit(limit)
        )
        async with self._database.reading() as connection:
            rows = (await connection.execute(query)).all()
        return [FailureCount(row.subscription_id, row.failures, _moment(row.last_failure_at) or since) for row in rows]


def _window(table: Table, since: datetime) -> tuple[ColumnElement[bool], ...]:
    """Attempts (or attempt batches, whose ids are attempt ids) started since `since`, by primary key."""
    return table.c.id >= first_id_at("att", since), table.c.started_at >= since


def _bucket(latency: ColumnElement[Any], bounds: Sequence[float]) -> ColumnElement[int]:
    return case(*((latency <= bound, index) for index, bound in enumerate(bounds)), else_=len(bounds))


def _minute_and_latency(dialect: StoreDialect, table: Table) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """An attempt's minute as 'YYYY-MM-DD HH:MM' text, and seconds from the delivery's creation (the publish)
    to the end of the attempt.

    `table` is `attempts` or `attempt_batches`: both have the attempt's started_at and duration_ms."""
    started_at = table.c.started_at
    finished_s = cast(table.c.duration_ms, Float) / 1000.0
    return dialect.minute_text(started_at), dialect.seconds_between(started_at, deliveries.c.created_at) + finished_s


def _parse_minute(text: str) -> datetime:
    return datetime.strptime(text, MINUTE_FORMAT).replace(tzinfo=UTC)


def _moment(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
