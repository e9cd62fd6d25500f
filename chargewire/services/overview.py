"""The back office's view of delivery: per-minute outcomes and latency, queue depth, failing subscriptions, workers.

Figures come from the database, so they cover every worker process, not only this one. Latency percentiles
are estimated from histogram buckets counted in SQL (as Prometheus does), which keeps each poll to a few
grouped rows however many deliveries there were.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from chargewire.clock import utcnow
from chargewire.errors import NotFound
from chargewire.models import Subscription
from chargewire.services.health import HealthService, WorkerView
from chargewire.services.storage import StorageService
from chargewire.services.subscriptions import OPERATOR, SubscriptionService
from chargewire.store.delivery_stats import DeliveryStats, LatencyBucket, OutcomeCount, SubscriptionHealth
from chargewire.store.delivery_store import DeliveryStore
from chargewire.store.outage import is_unavailable
from chargewire.store.retention import ExpiryRun

logger = logging.getLogger(__name__)

LATENCY_BOUNDS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
OUTCOMES = ("delivered", "retry", "failed")
HEALTH_WINDOW = timedelta(hours=24)
# Retries with nothing delivered for this long mean the receiver is down, not that a request was refused.
HEALTH_STALE = timedelta(minutes=5)
_CACHE_S = 2.0
_QUEUE_SAMPLE_EVERY_S = 5.0
_QUEUE_SAMPLES = 360
_FAILING_SHOWN = 10


@dataclass(frozen=True, slots=True)
class MinutePoint:
    """One minute of attempts by outcome, and the latency of that minute's deliveries."""

    minute: datetime
    counts: dict[str, int]
    p50_s: float | None
    p99_s: float | None


@dataclass(frozen=True, slots=True)
class QueueSample:
    """The queue depth at one moment."""

    at: datetime
    counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class FailingSubscription:
    """A subscription whose attempts failed in the window."""

    subscription: Subscription
    failures: int
    last_failure_at: datetime


@dataclass(frozen=True, slots=True)
class Overview:
    """Everything the overview page draws."""

    generated_at: datetime
    window_minutes: int
    minutes: list[MinutePoint]
    p50_s: float | None
    p99_s: float | None
    queue: QueueSample
    queue_history: list[QueueSample]
    failing: list[FailingSubscription]
    workers: list[WorkerView]
    oldest_due_age_s: float | None
    # The last expiry run and the table sizes it measured (none before the first, or without a storage service).
    storage: ExpiryRun | None = None
    # Set when the database could not be read: the figures are the last ones read, or none.
    database_error: str | None = None


def health_state(health: SubscriptionHealth | None, now: datetime) -> str:
    """`failing`, `healthy` or `idle`, from how deliveries went most recently, not from any failure at all.

    A receiver that refused some requests which later succeeded is healthy. It is failing when its latest
    final outcome is a failure, or when deliveries are retrying and none was delivered for HEALTH_STALE.
    """
    if health is None or (health.last_delivered_at is None and health.last_failed_at is None):
        return "failing" if health is not None and health.retrying_recently else "idle"
    delivered = health.last_delivered_at
    if delivered is None or (health.last_failed_at is not None and health.last_failed_at > delivered):
        return "failing"
    if health.retrying_recently and now - delivered > HEALTH_STALE:
        return "failing"
    return "healthy"


def percentile(bounds: Sequence[float], counts: Sequence[int], quantile: float) -> float | None:
    """The `quantile` of a histogram (counts per bucket `<= bounds[i]`, plus one overflow bucket).

    Interpolates linearly inside the bucket that holds the rank; the overflow bucket answers its lower bound.
    """
    total = sum(counts)
    if total == 0:
        return None
    rank = quantile * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            lower = bounds[index - 1] if index > 0 else 0.0
            if index >= len(bounds):
                return lower
            return lower + (bounds[index] - lower) * max(0.0, rank - seen) / count
        seen += count
    return bounds[-1]


class OverviewService:
    """Builds the overview and the health column of the subscriptions list."""

    def __init__(
        self,
        stats: DeliveryStats,
        deliveries: DeliveryStore,
        subscriptions: SubscriptionService,
        health: HealthService,
        window_minutes: int = 30,
        *,
        storage: StorageService | None = None,
    ) -> None:
        self._stats = stats
        self._storage = storage
        self._health = health
        self._deliveries = deliveries
        self._subscriptions = subscriptions
        self.window_minutes = window_minutes
        # Queue depth has no history in the database: `serve` samples it from start (sample_queue).
        self._queue_history: deque[QueueSample] = deque(maxlen=_QUEUE_SAMPLES)
        self._cached: tuple[float, Overview] | None = None

    async def health(self, subscription_ids: Sequence[str]) -> dict[str, SubscriptionHealth]:
        """Each subscription's last delivered and failed times and its failures of the last 24 hours."""
        rows = await self._stats.subscription_health(subscription_ids, utcnow() - HEALTH_WINDOW)
        return {row.subscription_id: row for row in rows}

    async def snapshot(self) -> Overview:
        """The overview now; polled by every open overview page, so it is reused for a couple of seconds.

        While the database is unavailable it says so, with the last figures read (or none).
        """
        now_s = time.monotonic()
        if self._cached is not None and now_s - self._cached[0] < _CACHE_S:
            return self._cached[1]
        try:
            overview = await self._build()
        except Exception as error:
            if not is_unavailable(error):
                raise
            return self._unavailable(f"{type(error).__name__}: {error}")
        self._cached = (now_s, overview)
        return overview

    def _unavailable(self, reason: str) -> Overview:
        now = utcnow()
        if self._cached is not None:
            return replace(self._cached[1], database_error=reason)
        empty = QueueSample(now, {"due": 0, "scheduled": 0, "failed": 0})
        return Overview(now, self.window_minutes, [], None, None, empty, [], [], [], None, database_error=reason)

    async def _build(self) -> Overview:
        now = utcnow()
        workers = await self._health.workers()
        first_minute = now.replace(second=0, microsecond=0) - timedelta(minutes=self.window_minutes - 1)
        counts = await self._stats.attempts_by_minute(first_minute)
        buckets = await self._stats.latency_by_minute(first_minute, LATENCY_BOUNDS_S)
        minutes = _minute_points(first_minute, self.window_minutes, counts, buckets)
        overall = [0] * (len(LATENCY_BOUNDS_S) + 1)
        for row in buckets:
            overall[row.bucket] += row.count
        queue = await self._sample_queue(now)
        return Overview(
            generated_at=now,
            window_minutes=self.window_minutes,
            minutes=minutes,
            p50_s=percentile(LATENCY_BOUNDS_S, overall, 0.5),
            p99_s=percentile(LATENCY_BOUNDS_S, overall, 0.99),
            queue=queue,
            queue_history=list(self._queue_history),
            failing=await self._failing(first_minute),
            workers=workers.workers,
            oldest_due_age_s=workers.oldest_due_age_s,
            storage=None if self._storage is None else await self._storage.last_run(),
        )

    async def sample_queue(self, stop: asyncio.Event) -> None:
        """Sample the queue depth every few seconds until `stop`, so the chart has a history when first opened."""
        while not stop.is_set():
            try:
                await self._sample_queue(utcnow())
            except Exception:  # a database hiccup costs one sample, never the sampler
                logger.exception("could not sample the queue depth for the overview")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _QUEUE_SAMPLE_EVERY_S)

    async def _sample_queue(self, now: datetime) -> QueueSample:
        """The queue depth now, kept in the history when the last sample is old enough."""
        queue = QueueSample(now, await self._deliveries.queue_depth(now))
        last = self._queue_history[-1] if self._queue_history else None
        if last is None or (now - last.at).total_seconds() >= _QUEUE_SAMPLE_EVERY_S:
            self._queue_history.append(queue)
        return queue

    async def _failing(self, since: datetime) -> list[FailingSubscription]:
        failing = []
        for row in await self._stats.failures_by_subscription(since, _FAILING_SHOWN):
            try:
                subscription = await self._subscriptions.get(OPERATOR, row.subscription_id)
            except NotFound:  # deleted since it failed
                continue
            failing.append(FailingSubscription(subscription, row.failures, row.last_failure_at))
        return failing


def _minute_points(
    first: datetime, count: int, outcomes: Sequence[OutcomeCount], buckets: Sequence[LatencyBucket]
) -> list[MinutePoint]:
    by_minute: dict[datetime, dict[str, int]] = {}
    for row in outcomes:
        by_minute.setdefault(row.minute, {})[row.outcome] = row.count
    histograms: dict[datetime, list[int]] = {}
    for bucket in buckets:
        histograms.setdefault(bucket.minute, [0] * (len(LATENCY_BOUNDS_S) + 1))[bucket.bucket] += bucket.count
    points = []
    for index in range(count):
        minute = first + timedelta(minutes=index)
        seen = by_minute.get(minute, {})
        histogram = histograms.get(minute, [])
        points.append(
            MinutePoint(
                minute=minute,
                counts={outcome: seen.get(outcome, 0) for outcome in OUTCOMES},
                p50_s=percentile(LATENCY_BOUNDS_S, histogram, 0.5) if histogram else None,
                p99_s=percentile(LATENCY_BOUNDS_S, histogram, 0.99) if histogram else None,
            )
        )
    return points
