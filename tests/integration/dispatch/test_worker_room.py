"""A worker at its in-flight limit claims again as soon as recording finished attempts makes room, even when
it became full while that recording ran; not at its next poll."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from chargewire.catalog import load_event_types
from chargewire.config import Settings
from chargewire.dispatch.dispatcher import Dispatcher
from chargewire.runtime import Runtime
from chargewire.store.delivery_records import AttemptRecord
from tests.integration.dispatch.conftest import Subscribe
from tests.support.receiver import Receiver, always

BOOT = load_event_types()["BootNotification"].example


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A worker that holds at most 8 deliveries, claims 4 at a time, and polls so rarely that only wake-ups
    can keep it going."""
    return settings.model_copy(
        update={
            "worker_max_in_flight": 8,
            "worker_max_in_flight_per_subscription": 8,
            "worker_batch_size": 4,
            "worker_poll_interval_s": 30.0,
        }
    )


class HeldFlush:
    """Holds the worker's first recording of attempts until the test lets it finish."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()


@pytest.fixture
async def held_flush(runtime: Runtime) -> AsyncIterator[HeldFlush]:
    """The (real) delivery store, with its first `record_attempts` held at the start."""
    store = runtime.delivery_store
    record_attempts = store.record_attempts
    held = HeldFlush()

    async def first_held(records: Sequence[AttemptRecord]) -> None:
        if not held.started.is_set():
            held.started.set()
            await held.release.wait()
        await record_attempts(records)

    store.record_attempts = first_held  # type: ignore[method-assign]
    yield held
    del store.record_attempts


async def test_a_worker_filled_during_a_flush_claims_again_when_it_ends(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe, held_flush: HeldFlush, dispatcher: Dispatcher
) -> None:
    await subscribe(receiver.on("/room", always(202)), "BootNotification")
    await runtime.publisher.publish([BOOT] * 4)
    await held_flush.started.wait()  # those 4 are delivered, and recording them is held: 4 of 8 still count

    await runtime.publisher.publish([BOOT] * 4)  # claimed at once: the worker is now full
    await receiver.wait_for(8, "/room")
    await runtime.publisher.publish([BOOT] * 8)  # announced, but there is no room to claim them
    await asyncio.sleep(0.2)
    held_flush.release.set()

    # Only the end of the held flush can make room now; the next poll is 30 s away.
    requests = await receiver.wait_for(16, "/room", timeout_s=10)
    assert len({request.headers["webhook-id"] for request in requests}) == 16
