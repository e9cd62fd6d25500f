"""A subscription's waiting deliveries start only while their lease has room for a whole attempt; those whose lease
is nearly over are handed back unattempted, and no delivery is both started and handed back. Hand-offs beyond a full
buffer wait in a bounded overflow, a subscription at most its share, which claims do not count against their room.
A subscription a claim left due rows of takes hand-offs into half its buffer only, until the usual claim, looking at
it, comes back short."""

from __future__ import annotations

from datetime import timedelta
from itertools import count

import pytest

from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.dispatch.breaker import CircuitBreakers
from chargewire.dispatch.subscription_queues import SubscriptionQueues, buffer_size
from chargewire.dispatch.targets import DeliveryTarget
from chargewire.models import Subscription, Via
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


# Two wait within the subscription's buffer; a burst more overflows it (hand-offs' overflow).
@pytest.mark.parametrize("waiting", [2, buffer_size(1, SETTINGS) + 5], ids=["buffered", "overflowing"])
def test_waiting_deliveries_whose_lease_is_nearly_over_are_handed_back_all_together_not_started(waiting: int) -> None:
    queues = _queues()
    fresh, late = _deliveries(1), _deliveries(waiting)
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

    assert _started_one_at_a_time(queues, "sub_a") == deliveries


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


def _targets(subscription_id: str) -> dict[str, DeliveryTarget]:
    now = utcnow()
    subscription = Subscription(subscription_id, Via.WEBHOOK, ("session.started",), "tok_a", 2, now, now)
    return {subscription_id: DeliveryTarget(subscription, "token", ("whsec_a2V5",))}


def _handed_off(queues: SubscriptionQueues, subscription_id: str, offered: int) -> list[ClaimedDelivery]:
    """Offer `offered` hand-offs of a webhook subscription one at a time, as publishes do; queue those it may take."""
    now = utcnow()
    targets = _targets(subscription_id)
    taken = []
    for delivery in _deliveries(offered, subscription_id):
        if queues.may_hand_off(subscription_id):
            taken.append(delivery)
            queues.add([delivery], targets, now + timedelta(seconds=60))
    return taken


def test_hand_offs_overflow_a_full_buffer_up_to_the_subscriptions_share_of_the_overflow() -> None:
    queues = _queues()
    buffer = buffer_size(1, SETTINGS)
    share = SETTINGS.worker_max_in_flight // 2

    taken = _handed_off(queues, "sub_a", buffer + share + 10)

    assert len(taken) == buffer + share
    assert queues.hand_off_room == 2 * SETTINGS.worker_max_in_flight


def test_one_subscriptions_overflow_leaves_the_others_their_hand_offs_and_claims_their_room() -> None:
    queues = _queues()
    busy = _handed_off(queues, "sub_busy", 10_000)

    assert len(_handed_off(queues, "sub_other", 1)) == 1
    # What the busy subscription holds beyond its buffer is not counted against claims.
    held = len(busy) + 1
    assert queues.claim_room(held) == SETTINGS.worker_max_in_flight - buffer_size(1, SETTINGS) - 1


def test_claims_never_take_the_worker_beyond_the_hand_off_room() -> None:
    queues = _queues()
    _handed_off(queues, "sub_a", 10_000)
    _handed_off(queues, "sub_b", 10_000)

    assert queues.claim_room(queues.hand_off_room) == 0


def test_overflowing_hand_offs_start_in_publish_order_once_each_after_the_buffer() -> None:
    queues = _queues()
    taken = _handed_off(queues, "sub_a", 300)

    assert _started_one_at_a_time(queues, "sub_a") == taken


def _started_one_at_a_time(queues: SubscriptionQueues, subscription_id: str) -> list[ClaimedDelivery]:
    """What `subscription_id`'s queue starts, in order, as each attempt ends one by one, none handed back; the queue
    left empty."""
    started = [delivery for batch in queues.start_ready(subscription_id, batching=False).batches for delivery in batch]
    while True:
        ready = queues.finished(subscription_id, 1, hold_back=False, batching=False)
        assert ready.hand_back is None
        if not ready.batches:
            break
        started += [delivery for batch in ready.batches for delivery in batch]
    assert not queues.busy
    return started


def _claim(queues: SubscriptionQueues, subscription_id: str, taken: int, short: bool) -> set[str]:
    """A claim as the dispatcher makes one: the subscriptions it leaves out, then `taken` of `subscription_id`'s rows;
    `short` when it came back with less than it asked for."""
    left_out = queues.left_out(utcnow())
    if short:
        queues.found_all_due()
    queues.claimed(_deliveries(taken, subscription_id), _targets(subscription_id))
    return left_out


def test_rows_left_behind_limit_hand_offs_to_half_the_buffer_until_a_short_claim_finds_the_rest() -> None:
    queues = _queues()
    buffer = buffer_size(1, SETTINGS)
    _claim(queues, "sub_a", buffer, short=False)
    assert not queues.may_hand_off("sub_a")

    # Its buffer drains: hand-offs fill half of it, the other half is the claims' that fetch the rows left behind.
    _started_one_at_a_time(queues, "sub_a")
    _claim(queues, "sub_a", 3, short=False)
    assert len(_handed_off(queues, "sub_a", buffer)) == buffer // 2 - 3
    assert queues.left_behind_with_room()

    _claim(queues, "sub_a", 0, short=True)
    assert not queues.left_behind_with_room()
    assert len(_handed_off(queues, "sub_a", buffer)) == buffer


def test_a_subscription_left_out_of_a_short_claim_still_has_its_rows_left_behind() -> None:
    queues = _queues()
    _handed_off(queues, "sub_a", buffer_size(1, SETTINGS))

    assert _claim(queues, "sub_b", 0, short=True) == {"sub_a"}
    assert not queues.may_hand_off("sub_a")
    assert not queues.left_behind_with_room()  # saturated: no claim could give it any
    _started_one_at_a_time(queues, "sub_a")
    _claim(queues, "sub_a", 1, short=False)
    assert queues.left_behind_with_room()
