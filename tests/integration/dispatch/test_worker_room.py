"""A worker at its in-flight limit claims again as soon as recording the finished attempts makes room,
not at its next poll."""

from __future__ import annotations

import pytest

from chargewire.catalog import load_event_types
from chargewire.config import Settings
from chargewire.dispatch.dispatcher import Dispatcher
from chargewire.runtime import Runtime
from tests.integration.dispatch.conftest import Subscribe
from tests.support.receiver import Receiver, always

BOOT = load_event_types()["BootNotification"].example
EVENTS = 300


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A worker that holds at most 8 deliveries, and polls so rarely that only wake-ups can keep it going."""
    return settings.model_copy(
        update={
            "worker_max_in_flight": 8,
            "worker_max_in_flight_per_subscription": 8,
            "worker_batch_size": 5,
            "worker_poll_interval_s": 30.0,
        }
    )


async def test_a_full_worker_claims_again_when_a_flush_makes_room(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe, dispatcher: Dispatcher
) -> None:
    await subscribe(receiver.on("/room", always(202)), "BootNotification")

    await runtime.publisher.publish([BOOT] * EVENTS)

    # 300 deliveries through a worker of 8 take dozens of claims: one missed wake-up would cost a 30 s poll.
    requests = await receiver.wait_for(EVENTS, "/room", timeout_s=25)
    assert len({request.headers["webhook-id"] for request in requests}) == EVENTS
