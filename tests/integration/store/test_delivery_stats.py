"""The back office's figures on both backends: per-minute outcomes, latency buckets, health and failures."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.models import DeliveryStatus
from chargewire.runtime import Runtime
from chargewire.services.overview import LATENCY_BOUNDS_S
from chargewire.services.subscriptions import OPERATOR
from chargewire.store.delivery_log import DeliveryFilter
from chargewire.store.delivery_stats import DeliveryStats
from tests.support.receiver import Receiver, always

EVENTS = 4
ATTEMPTS_PER_DELIVERY = 3


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Three quick attempts per delivery."""
    return settings.model_copy(
        update={"retry_schedule_s": [0.0, 0.1, 0.1], "retry_jitter": 0.0, "worker_poll_interval_s": 0.05}
    )


@pytest.fixture
async def delivered(runtime: Runtime, receiver: Receiver) -> tuple[str, str]:
    """A working and a broken webhook subscription, EVENTS events each, run until nothing is pending."""
    owner = (await runtime.tokens.create("owner", ["notifications:manage"])).token
    ids = []
    for path, status in (("/ok", 202), ("/broken", 500)):
        receiver.on(path, always(status))
        body = {"via": "webhook", "notifications": ["BootNotification"], "webhook": {"callbackUrl": receiver.url(path)}}
        ids.append((await runtime.subscriptions.create(owner, body)).subscription.id)
    await runtime.publisher.publish([load_event_types()["BootNotification"].example] * EVENTS)
    stop = asyncio.Event()
    worker = asyncio.create_task(runtime.dispatcher().run(stop))
    pending = DeliveryFilter(status=DeliveryStatus.PENDING)
    for _ in range(600):
        still_pending = (await runtime.deliveries.list_page(OPERATOR, pending, None, 1)).deliveries
        if not still_pending:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await worker
    assert not still_pending, f"still pending after 30 s: {still_pending}"
    return ids[0], ids[1]


async def test_attempts_are_counted_per_minute_and_outcome(runtime: Runtime, delivered: tuple[str, str]) -> None:
    counts = await DeliveryStats(runtime.database).attempts_by_minute(utcnow() - timedelta(minutes=5))
    totals: dict[str, int] = {}
    for row in counts:
        assert row.minute.second == 0
        totals[row.outcome] = totals.get(row.outcome, 0) + row.count
    assert totals == {"delivered": EVENTS, "retry": EVENTS * (ATTEMPTS_PER_DELIVERY - 1), "failed": EVENTS}


async def test_attempts_before_the_window_are_left_out(runtime: Runtime, delivered: tuple[str, str]) -> None:
    assert await DeliveryStats(runtime.database).attempts_by_minute(utcnow() + timedelta(seconds=1)) == []


async def test_delivered_attempts_fall_into_latency_buckets(runtime: Runtime, delivered: tuple[str, str]) -> None:
    buckets = await DeliveryStats(runtime.database).latency_by_minute(utcnow() - timedelta(minutes=5), LATENCY_BOUNDS_S)
    assert sum(bucket.count for bucket in buckets) == EVENTS
    # Delivered on the first attempt to a loopback receiver: well under the 10 s bucket.
    assert all(LATENCY_BOUNDS_S[bucket.bucket] <= 10 for bucket in buckets)


async def test_failing_subscriptions_are_ranked_by_failed_attempts(
    runtime: Runtime, delivered: tuple[str, str]
) -> None:
    _, broken = delivered
    failures = await DeliveryStats(runtime.database).failures_by_subscription(utcnow() - timedelta(minutes=5), 10)
    assert [(row.subscription_id, row.failures) for row in failures] == [(broken, EVENTS * ATTEMPTS_PER_DELIVERY)]


async def test_health_tells_the_last_delivery_and_recent_failures(runtime: Runtime, delivered: tuple[str, str]) -> None:
    working, broken = delivered
    health = await runtime.overview.health([working, broken])
    assert health[working].last_delivered_at is not None
    assert (health[working].failed_recently, health[working].last_failed_at) == (0, None)
    assert health[broken].last_delivered_at is None
    assert health[broken].failed_recently == EVENTS
    assert health[broken].last_failed_at is not None


async def test_the_overview_puts_it_together(runtime: Runtime, delivered: tuple[str, str]) -> None:
    overview = await runtime.overview.snapshot()
    assert len(overview.minutes) == overview.window_minutes
    assert sum(point.counts["failed"] for point in overview.minutes) == EVENTS
    assert overview.p50_s is not None
    assert overview.queue.counts["failed"] == EVENTS
    assert [item.subscription.id for item in overview.failing] == [delivered[1]]
