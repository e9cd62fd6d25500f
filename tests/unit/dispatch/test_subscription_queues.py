"""A subscription's waiting deliveries start only while their lease has room for a whole attempt; those whose lease
is nearly over are handed back unattempted, and no delivery is both started and handed back."""

from __future__ import annotations

from datetime import timedelta
from itertools import count

from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.dispatch.breaker import CircuitBreakers
from chargewire.dispatch.subscription_queues import SubscriptionQueues, buffer_size
from chargewire.store.delivery_records import ClaimedDelivery

SETTINGS = Settings(database_url="sqlite://", webhook_timeout_s=15.0, worker_lease_s=60.0)
_numbers = count()


def _deliveries(how_many: int, subscription_id: str = "sub_a") -> list[ClaimedDelivery]:
    return [
        ClaimedDelivery(
            f"dlv_{next(_numbers)}", "evt_1", subscription_id, "session.started", 0, None, b"{}", None, utcnow()
        )
        for _ in range(how_many)
    ]


def _queues() -> SubscriptionQueues:
    return SubscriptionQueues({"webhook": 1}, CircuitBreakers(), "webhook", SETTINGS)


def test_a_waiting_delivery_whose_lease_is_nearly_over_is_handed_back_not_started() -> None:
    queues = _queues()
    fresh, late = _deliveries(1), _deliveries(2)
    queues.add(fresh, {}, utcnow() + timedelta(seconds=60))
    started = queues.start_ready("sub_a", batching=False)
    # Each of these has 10 s of its lease left: less than a 15 s attempt and its margin.
    queues.add(late, {}, utcnow() + timedelta(seconds=10))

    after = queues.finished("sub_a", 1, hold_back=False, batching=False)

    assert started.batches == [fresh]
    assert after.batches == []
    assert after.hand_back is not None
    assert after.hand_back.delivery_ids == [delivery.id for delivery in late]
    assert after.hand_back.due_at <= utcnow()


def test_every_waiting_delivery_with_lease_to_spare_is_started_exactly_once() -> None:
    queues = _queues()
    deliveries = _deliveries(6)
    queues.add(deliveries, {}, utcnow() + timedelta(seconds=60))

    started = [delivery for batch in queues.start_ready("sub_a", batching=False).batches for delivery in batch]
    while len(started) < len(deliveries):
        ready = queues.finished("sub_a", 1, hold_back=False, batching=False)
        assert ready.hand_back is None
        started += [delivery for batch in ready.batches for delivery in batch]

    assert started == deliveries
    assert queues.finished("sub_a", 1, hold_back=False, batching=False).batches == []
    assert not queues.busy


def test_a_subscriptions_buffer_is_half_the_workers_room_when_that_is_deeper_than_four_waves() -> None:
    assert buffer_size(16, SETTINGS) == SETTINGS.worker_max_in_flight // 2
    assert buffer_size(64, SETTINGS) == 4 * 64


def test_a_fresh_delivery_starts_when_the_whole_lease_is_shorter_than_an_attempt() -> None:
    short = SETTINGS.model_copy(update={"worker_lease_s": 5.0})
    queues = SubscriptionQueues({"webhook": 1}, CircuitBreakers(), "webhook", short)
    fresh = _deliveries(1)
    queues.add(fresh, {}, utcnow() + timedelta(seconds=5))

    ready = queues.start_ready("sub_a", batching=False)

    assert ready.batches == [fresh]
    assert ready.hand_back is None
