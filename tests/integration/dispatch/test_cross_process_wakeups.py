"""Cross-process wake-ups on PostgreSQL: a commit in one runtime wakes the workers of another at once.

Every runtime here polls every 30 s, so anything that arrives within seconds arrived because of a wake-up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from chargewire.catalog import load_event_types
from chargewire.config import Settings
from chargewire.models import DeliveryStatus
from chargewire.runtime import Runtime
from chargewire.services.subscriptions import OPERATOR
from chargewire.store.delivery_log import DeliveryFilter
from chargewire.store.dialects.postgresql_announcements import encoded
from chargewire.store.dialects.postgresql_wakeups import LISTENER_NAME, WAKE_CHANNEL, WakeListener
from chargewire.store.tables import deliveries
from tests.integration.dispatch.conftest import Subscribe
from tests.support.receiver import Receiver, always

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)

HARDWARE = load_event_types()["HardwareStatusNotification"].example
SLOW_POLL_S = 30.0
WITHIN_S = 10.0
_SENTINEL_CHANNEL = "test_wakeups_sentinel"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Test settings whose poll is far slower than any timeout here."""
    return settings.model_copy(update={"worker_poll_interval_s": SLOW_POLL_S})


@pytest.fixture
async def other_runtime(settings: Settings, runtime: Runtime) -> AsyncIterator[Runtime]:
    """A second runtime on the same database, standing in for another process."""
    async with await Runtime.open(settings) as opened:
        yield opened


@pytest.fixture
async def worker(other_runtime: Runtime) -> AsyncIterator[None]:
    """A delivery worker in the other runtime, run as `chargewire worker` runs it."""
    stop = asyncio.Event()
    task = asyncio.create_task(other_runtime.deliver(other_runtime.dispatcher(), stop))
    yield
    stop.set()
    await asyncio.wait_for(task, 30)


class WakeCounter:
    """Counts wakes and lets a test wait for the n-th."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = asyncio.Condition()

    def __call__(self) -> None:
        self.count += 1
        asyncio.get_running_loop().create_task(self._announce())

    async def _announce(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, count: int) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.count >= count), WITHIN_S)


@pytest.fixture
async def listening(other_runtime: Runtime) -> AsyncIterator[tuple[WakeListener, WakeCounter]]:
    """A wake listener of the other runtime, connected (its connect wake counted), with quick reconnects."""
    wakes = WakeCounter()
    listener = WakeListener(other_runtime.database.engine, wakes, first_retry_s=0.1, max_retry_s=0.5)
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    await wakes.wait_for(1)
    yield listener, wakes
    stop.set()
    await asyncio.wait_for(task, 30)


async def _asyncpg_connect(settings: Settings) -> Any:
    url = make_url(settings.effective_database_url).set(drivername="postgresql")
    return await asyncpg.connect(url.render_as_string(hide_password=False))


async def test_a_publish_in_one_runtime_wakes_the_listener_of_another(
    runtime: Runtime, listening: tuple[WakeListener, WakeCounter]
) -> None:
    _listener, wakes = listening
    before = wakes.count
    await runtime.publisher.publish([HARDWARE])
    await wakes.wait_for(before + 1)


async def test_a_burst_of_publishes_sends_far_fewer_notifies_than_publishes(
    runtime: Runtime, settings: Settings
) -> None:
    observer = await _asyncpg_connect(settings)
    notifies = 0
    sentinel = asyncio.Event()

    def count(_connection: Any, _pid: int, _channel: str, _payload: str) -> None:
        nonlocal notifies
        notifies += 1

    try:
        await observer.add_listener(WAKE_CHANNEL, count)
        await observer.add_listener(_SENTINEL_CHANNEL, lambda *_args: sentinel.set())
        publishes = 200
        await asyncio.gather(*(runtime.publisher.publish([HARDWARE]) for _ in range(publishes)))
        assert runtime.notifier is not None
        await runtime.notifier.flush()
        # Notifications arrive in commit order: once the sentinel sent last is here, every NOTIFY is.
        await observer.execute(f"NOTIFY {_SENTINEL_CHANNEL}")
        await asyncio.wait_for(sentinel.wait(), WITHIN_S)
    finally:
        await observer.close()
    assert 1 <= notifies <= publishes // 10


async def test_a_publish_made_from_a_guess_wakes_other_processes_in_its_own_statement_naming_its_deliveries(
    runtime: Runtime, settings: Settings, subscribe: Subscribe
) -> None:
    created = await subscribe("http://127.0.0.1:9/", "HardwareStatusNotification")
    # The notifier sends nothing more: only a publish's own statement can wake the observer now.
    assert runtime.notifier is not None
    await runtime.notifier.aclose()
    observer = await _asyncpg_connect(settings)
    heard: list[str] = []
    sentinel = asyncio.Event()
    try:
        await observer.add_listener(WAKE_CHANNEL, lambda *notification: heard.append(notification[3]))
        await observer.add_listener(_SENTINEL_CHANNEL, lambda *_args: sentinel.set())
        # The first publish has no guess yet (a transaction, woken by the notifier); the others are one statement.
        published = [await runtime.publisher.publish([HARDWARE]) for _ in range(3)]
        await observer.execute(f"NOTIFY {_SENTINEL_CHANNEL}")
        await asyncio.wait_for(sentinel.wait(), WITHIN_S)
    finally:
        await observer.close()
    async with runtime.database.reading() as connection:
        made = dict((await connection.execute(select(deliveries.c.event_id, deliveries.c.id))).all())
    subscription_id = created.subscription.id
    assert heard == [encoded([(made[event_id], subscription_id)]) for [event_id] in published[1:]]


async def test_the_last_of_many_publishes_always_reaches_a_worker_that_only_wakes_on_notify(
    runtime: Runtime, worker: None, receiver: Receiver, subscribe: Subscribe
) -> None:
    await subscribe(receiver.on("/burst", always(202)), "HardwareStatusNotification")
    expected = 0
    for rounds in range(5):
        # Sequential publishes overlap the NOTIFYs in flight, so some are coalesced and some are not.
        for point in range(20):
            await runtime.publisher.publish([{**HARDWARE, "chargePointId": rounds * 100 + point}])
        expected += 20
        await receiver.wait_for(expected, "/burst", timeout_s=WITHIN_S)


async def test_a_retry_through_one_runtime_wakes_the_worker_of_another(
    runtime: Runtime, worker: None, receiver: Receiver, subscribe: Subscribe
) -> None:
    _subscription_id, delivery_id = await _failed_delivery(runtime, receiver, subscribe, "/retry")
    await runtime.deliveries.retry(OPERATOR, delivery_id)
    await receiver.wait_for(2, "/retry", timeout_s=WITHIN_S)


async def test_a_resend_through_one_runtime_wakes_the_worker_of_another(
    runtime: Runtime, worker: None, receiver: Receiver, subscribe: Subscribe
) -> None:
    subscription_id, _delivery_id = await _failed_delivery(runtime, receiver, subscribe, "/resend")
    queued = await runtime.resends.resend(OPERATOR, subscription_id, ["HardwareStatusNotification"])
    assert queued == 1
    await receiver.wait_for(2, "/resend", timeout_s=WITHIN_S)


async def test_a_terminated_listener_connects_again_wakes_once_and_keeps_listening(
    runtime: Runtime,
    settings: Settings,
    listening: tuple[WakeListener, WakeCounter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    listener, wakes = listening
    caplog.set_level(logging.INFO, logger="chargewire.store.dialects.postgresql_wakeups")
    killer = await _asyncpg_connect(settings)
    try:
        terminated = await killer.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1 AND datname = current_database()",
            LISTENER_NAME,
        )
    finally:
        await killer.close()
    assert terminated == 1
    before = wakes.count
    await wakes.wait_for(before + 1)  # the wake after connecting again
    assert listener.connections == 2
    assert any("not connected" in record.getMessage() for record in caplog.records)

    await runtime.publisher.publish([HARDWARE])
    await wakes.wait_for(before + 2)


async def _failed_delivery(runtime: Runtime, receiver: Receiver, subscribe: Subscribe, path: str) -> tuple[str, str]:
    """(subscription id, delivery id) of a delivery the receiver at `path` refused for good; it accepts from now on."""
    subscription = await subscribe(receiver.on(path, always(400)), "HardwareStatusNotification")
    [event_id] = await runtime.publisher.publish([HARDWARE])
    await receiver.wait_for(1, path, timeout_s=WITHIN_S)
    where = DeliveryFilter(event_id=event_id, subscription_id=subscription.subscription.id)
    [delivery] = (await runtime.deliveries.list_page(OPERATOR, where, None, 10)).deliveries

    async def failed() -> None:
        while True:
            if (await runtime.deliveries.get(OPERATOR, delivery.id)).delivery.status is DeliveryStatus.FAILED:
                return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(failed(), WITHIN_S)
    receiver.on(path, always(202))
    return subscription.subscription.id, delivery.id
