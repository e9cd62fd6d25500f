"""A receiver that hung gets the events published after it healed at its breaker's first probe, not a minute on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from chargewire.catalog import load_event_types
from chargewire.config import Settings
from chargewire.dispatch.dispatcher import Dispatcher
from chargewire.models import Delivery, DeliveryStatus
from chargewire.runtime import Runtime
from chargewire.services.subscriptions import OPERATOR
from chargewire.store.delivery_log import DeliveryFilter
from tests.integration.dispatch.conftest import Subscribe
from tests.support.receiver import Received, Receiver, Reply, always

BOOT = load_event_types()["BootNotification"].example
# The breaker's threshold: this many timeouts in a row open it.
HUNG = 5
TIMEOUT_S = 0.5
# Well under the minute a timed-out delivery waits for its own retry, which is what held the breaker before.
PATIENCE_S = 30.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A webhook timeout the hung requests run into quickly."""
    return settings.model_copy(update={"webhook_timeout_s": TIMEOUT_S})


async def _once(runtime: Runtime, subscription_id: str, done: Callable[[list[Delivery]], bool]) -> list[Delivery]:
    """The subscription's deliveries, once `done` holds for them."""
    where = DeliveryFilter(subscription_id=subscription_id)

    async def poll() -> list[Delivery]:
        while True:
            page = await runtime.deliveries.list_page(OPERATOR, where, None, 100)
            if done(page.deliveries):
                return page.deliveries
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), PATIENCE_S)


def _each_attempted_once(deliveries: list[Delivery]) -> bool:
    return len(deliveries) == HUNG and all(d.attempt_count == 1 for d in deliveries)


def _delivered(deliveries: list[Delivery], event_id: str) -> bool:
    return any(d.event_id == event_id and d.status is DeliveryStatus.DELIVERED for d in deliveries)


async def test_an_event_published_after_a_hung_receiver_heals_is_its_breakers_first_probe(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe, dispatcher: Dispatcher
) -> None:
    arrivals: list[int] = []

    def hang_then_heal(_request: Received, count: int) -> Reply:
        arrivals.append(count)
        return Reply(delay_s=TIMEOUT_S * 4) if count < HUNG else Reply(status=202)

    sick = await subscribe(receiver.on("/sick", hang_then_heal), "BootNotification")
    await subscribe(receiver.on("/steady", always()), "BootNotification")
    await runtime.publisher.publish([BOOT] * HUNG)
    # Once all of them are recorded, their timeouts have opened the breaker.
    await _once(runtime, sick.subscription.id, lambda found: _each_attempted_once(found))

    [healed_event] = await runtime.publisher.publish([BOOT])
    found = await _once(runtime, sick.subscription.id, lambda found: _delivered(found, healed_event))

    assert [d.attempt_count for d in found if d.event_id == healed_event] == [1]
    # The hung requests, then one probe: the breaker held everything else back while it was open.
    assert len(arrivals) == HUNG + 1
    assert len(await receiver.wait_for(HUNG + 1, "/steady")) == HUNG + 1
