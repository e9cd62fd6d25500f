"""A worker whose every subscription is saturated does not keep walking their backlog: without announced
work it claims at most once a second, and announced work is claimed at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from chargewire.catalog import load_event_types
from chargewire.config import Settings
from chargewire.dispatch import subscription_queues
from chargewire.dispatch.dispatcher import Dispatcher
from chargewire.runtime import Runtime
from tests.integration.dispatch.conftest import Subscribe
from tests.support.receiver import Receiver, always

BOOT = load_event_types()["BootNotification"].example
ANNOUNCED_WITHIN_S = 2.5  # announced work is claimed within this, while no claim without news may come


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """One attempt in flight per subscription and a worker's room of eight (a buffer of four), so a backlog of a few
    deliveries saturates it; a quick poll."""
    update = {"worker_max_in_flight": 8, "worker_max_in_flight_per_subscription": 1, "worker_poll_interval_s": 0.02}
    return settings.model_copy(update=update)


@dataclass
class ClaimLog:
    """The sizes of the claims the delivery store answered, in order, and whether one took anything yet."""

    sizes: list[int] = field(default_factory=list)
    took_some: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def claims(runtime: Runtime) -> AsyncIterator[ClaimLog]:
    """Every claim the runtime's (real) delivery store answers, logged."""
    store = runtime.delivery_store
    claim = store.claim_due_deliveries
    log = ClaimLog()

    async def logged(*args: object, **kwargs: object) -> object:
        claimed = await claim(*args, **kwargs)  # type: ignore[arg-type]
        log.sizes.append(len(claimed))
        if claimed:
            log.took_some.set()
        return claimed

    store.claim_due_deliveries = logged  # type: ignore[method-assign]
    yield log
    del store.claim_due_deliveries


@pytest.fixture
async def stalled() -> AsyncIterator[asyncio.Event]:
    """Set once a test has made its observations: the saturated receiver answers only then (a fixed stall made each
    test and its worker's stop wait it out, ~5 s)."""
    released = asyncio.Event()
    yield released
    released.set()


@pytest.fixture
async def saturated(runtime: Runtime, receiver: Receiver, subscribe: Subscribe, stalled: asyncio.Event) -> str:
    """A subscription whose receiver stalls, with a backlog of 50 boot notifications."""
    created = await subscribe(receiver.on("/stalled", always(202, held=stalled)), "BootNotification")
    await runtime.publisher.publish([BOOT] * 50)
    return created.subscription.id


async def test_a_saturated_worker_claims_at_most_once_a_second_without_news(
    runtime: Runtime, receiver: Receiver, saturated: str, claims: ClaimLog, stalled: asyncio.Event
) -> None:
    dispatcher = runtime.dispatcher()
    stop = asyncio.Event()
    running = asyncio.create_task(dispatcher.run(stop))
    await claims.took_some.wait()

    await asyncio.sleep(1.5)  # 75 polls at 0.02 s

    sizes = list(claims.sizes)
    stalled.set()
    stop.set()
    await running
    assert sizes[0] > 0
    assert len(sizes) <= 3


async def test_announced_work_is_claimed_at_once_while_saturated(
    runtime: Runtime,
    receiver: Receiver,
    subscribe: Subscribe,
    saturated: str,
    claims: ClaimLog,
    dispatcher: Dispatcher,
    monkeypatch: pytest.MonkeyPatch,
    stalled: asyncio.Event,
) -> None:
    # Claims without news would now come a minute apart: only the announcement can bring this one in time.
    monkeypatch.setattr(subscription_queues, "_EXCLUSIVE_CLAIM_INTERVAL_S", 60.0)
    await claims.took_some.wait()
    await asyncio.sleep(0.2)
    await subscribe(receiver.on("/fresh", always(202)), "SessionStartStopNotification")

    await runtime.publisher.publish([load_event_types()["SessionStartStopNotification"].example])

    # While the stalled receiver holds every answer: an answer would make room and let any claim through.
    await receiver.wait_for(1, "/fresh", timeout_s=ANNOUNCED_WITHIN_S)
    stalled.set()  # before the dispatcher fixture's stop, which waits for the attempts in flight
