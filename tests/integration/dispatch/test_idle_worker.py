"""An idle worker waits for a reason, not a poll: a wake-up, the time its first known delivery falls due, or a
Kafka subscription made here; and so it reads nothing while nothing happens, yet misses no retry or lease."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest

from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.devtools.kafka_broker import KafkaBroker
from chargewire.dispatch.dispatcher import Dispatcher
from chargewire.runtime import Runtime
from chargewire.services.tokens import CreatedToken
from chargewire.store.delivery_claims import ClaimRequest
from tests.integration.dispatch.conftest import Subscribe
from tests.support.receiver import Receiver, Reply, always, in_turn

BOOT = load_event_types()["BootNotification"].example
NEVER_S = 3600.0  # a poll no test here waits for: whatever happens follows a signal or a known due time
QUIET_S = 0.3


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No timed look at all, and a retry 0.3 s after a first attempt that failed."""
    return settings.model_copy(
        update={"worker_poll_interval_s": NEVER_S, "worker_idle_poll_s": NEVER_S, "retry_schedule_s": [0.0, 0.3]}
    )


class Calls:
    """Counts of the calls made to the stores, by name, and of their answers ("<name> answered")."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._made = asyncio.Event()

    def wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        """`method`, counted as `name`."""

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.counts[name] += 1
            self._made.set()
            try:
                return await method(*args, **kwargs)
            finally:
                self.counts[f"{name} answered"] += 1
                self._made.set()

        return counted

    async def until(self, reached: Callable[[Counter[str]], bool]) -> Counter[str]:
        """The counts, once `reached` holds for them."""
        async with asyncio.timeout(10):
            while not reached(self.counts):
                self._made.clear()
                await self._made.wait()
        return Counter(self.counts)


@pytest.fixture
def store_calls(runtime: Runtime) -> Calls:
    """Every read or claim a worker makes to find work, by name, on the runtime's (real) stores."""
    calls = Calls()
    for store, names in (
        (runtime.delivery_store, ("next_due_at", "claim_due_deliveries")),
        (runtime.stream_store, ("look",)),
    ):
        for name in names:
            setattr(store, name, calls.wrap(name, getattr(store, name)))
    return calls


@pytest.fixture
async def running(runtime: Runtime) -> AsyncIterator[Callable[[], Dispatcher]]:
    """Starts the runtime's dispatcher when called, and stops it after the test."""
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    def start() -> Dispatcher:
        dispatcher = runtime.dispatcher()
        tasks.append(asyncio.create_task(dispatcher.run(stop)))
        return dispatcher

    yield start
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 30)


def _first_looks_made(counts: Counter[str]) -> bool:
    """Whether an idle worker's first look for due deliveries and for streams is over."""
    return counts["next_due_at answered"] > 0 and counts["look answered"] > 0


async def test_an_idle_worker_reads_nothing_between_wake_ups(
    runtime: Runtime, store_calls: Calls, running: Callable[[], Dispatcher]
) -> None:
    runtime.settings = runtime.settings.model_copy(update={"worker_poll_interval_s": 0.01})  # for work in hand
    running()
    after_first_look = await store_calls.until(_first_looks_made)

    await asyncio.sleep(QUIET_S)  # thirty of the fast polls

    assert store_calls.counts == after_first_look


async def test_a_retry_comes_due_without_any_wake_up(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe, running: Callable[[], Dispatcher]
) -> None:
    await subscribe(receiver.on("/hook", in_turn(Reply(503), Reply(202))), "BootNotification")
    running()

    await runtime.publisher.publish([BOOT])

    replies = await receiver.wait_for(2, "/hook", timeout_s=10)
    assert len(replies) == 2


async def test_a_lease_another_worker_lost_is_taken_when_it_runs_out_without_any_wake_up(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe, running: Callable[[], Dispatcher]
) -> None:
    await subscribe(receiver.on("/hook", always(202)), "BootNotification")
    await runtime.publisher.publish([BOOT])
    now = utcnow()
    lost = await runtime.delivery_store.claim_due_deliveries(
        ClaimRequest("wrk_gone", now, now + timedelta(seconds=0.5), 10, {"webhook": 10})
    )
    assert len(lost) == 1

    running()

    await receiver.wait_for(1, "/hook", timeout_s=10)


async def test_an_idle_worker_looks_for_streams_when_a_kafka_subscription_is_made_in_its_process(
    runtime: Runtime,
    owner: CreatedToken,
    kafka_broker: KafkaBroker,
    store_calls: Calls,
    running: Callable[[], Dispatcher],
) -> None:
    running()
    looks = (await store_calls.until(_first_looks_made))["look"]

    body = {
        "via": "kafka",
        "notifications": ["BootNotification"],
        "kafka": {"topic": "idle-worker", "brokers": [kafka_broker.bootstrap("PLAINTEXT")]},
    }
    await runtime.subscriptions.create(owner.token, body)

    await store_calls.until(lambda counts: counts["look"] > looks)


async def test_a_worker_with_no_kafka_subscription_does_not_look_for_streams_after_each_commit_it_hears(
    store_calls: Calls, running: Callable[[], Dispatcher]
) -> None:
    dispatcher = running()
    looks = (await store_calls.until(_first_looks_made))["look"]

    for _ in range(20):
        dispatcher.heard()  # another process's commit or NOTIFY
    # The claim loop heard it and read: the streamer, woken with it, would have asked by then.
    await store_calls.until(lambda counts: counts["next_due_at answered"] > 1)

    assert store_calls.counts["look"] == looks  # the streamer's look waits for the poll interval
