"""Workers told which deliveries a publish made due (PostgreSQL's NOTIFY payload) lease exactly those in one
statement, with no read of whether any is due; two such workers never both attempt one; and whatever no
wake-up names (too many to fit, a lost NOTIFY) is still found by the usual look and the poll, also by a worker
that announcements keep busy.

Each worker runs in a runtime of its own on the publisher's database, as `chargewire worker` beside
`serve --no-worker` runs it; its poll is far slower than any wait here unless a test says otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.ids import new_id
from chargewire.models import DeliveryStatus, Event
from chargewire.runtime import Runtime
from chargewire.store.event_store import EventStore
from chargewire.store.tables import attempts, deliveries
from tests.integration.dispatch.conftest import Subscribe
from tests.support.receiver import Receiver, always

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)

BOOT = load_event_types()["BootNotification"].example
SLOW_POLL_S = 30.0
WITHIN_S = 20.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No look but those wake-ups cause."""
    return settings.model_copy(update={"worker_poll_interval_s": SLOW_POLL_S, "worker_idle_poll_s": SLOW_POLL_S})


class Looks:
    """A worker's reads and claims, in order: (name, delivery ids it leased) for claims, (name, ()) for reads."""

    def __init__(self, runtime: Runtime) -> None:
        self.log: list[tuple[str, tuple[str, ...]]] = []
        store = runtime.delivery_store
        for name in ("next_due_at", "claim_due_deliveries", "claim_announced"):
            setattr(store, name, self._logged(name, getattr(store, name)))

    def _logged(self, name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def logged(*args: Any, **kwargs: Any) -> Any:
            place = len(self.log)
            self.log.append((name, ()))
            answer = await method(*args, **kwargs)
            if name != "next_due_at":
                self.log[place] = (name, tuple(delivery.id for delivery in answer))
            return answer

        return logged

    def claims_of(self, delivery_ids: set[str]) -> list[str]:
        """The names of the claims that leased any of `delivery_ids`."""
        return [name for name, leased in self.log if delivery_ids & set(leased)]


StartWorker = Callable[..., Awaitable[tuple[Runtime, Looks]]]


@pytest.fixture
async def start_worker(settings: Settings, runtime: Runtime) -> AsyncIterator[StartWorker]:
    """Starts a worker in a runtime of its own (with settings changed as asked), logging its looks."""
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    runtimes: list[Runtime] = []

    async def start(**changes: Any) -> tuple[Runtime, Looks]:
        opened = await Runtime.open(settings.model_copy(update=changes))
        runtimes.append(opened)
        looks = Looks(opened)
        tasks.append(asyncio.create_task(opened.deliver(opened.dispatcher(), stop)))
        return opened, looks

    yield start
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    for opened in runtimes:
        await opened.aclose()


async def _delivery_ids(runtime: Runtime, event_ids: list[str]) -> set[str]:
    async with runtime.database.reading() as connection:
        query = select(deliveries.c.id).where(deliveries.c.event_id.in_(event_ids))
        return set((await connection.execute(query)).scalars())


async def _delivered(runtime: Runtime, delivery_ids: set[str]) -> None:
    """Wait until every one of `delivery_ids` is recorded delivered."""
    query = select(func.count()).where(
        deliveries.c.id.in_(delivery_ids), deliveries.c.status == DeliveryStatus.DELIVERED.value
    )
    async with asyncio.timeout(WITHIN_S):
        while True:
            async with runtime.database.reading() as connection:
                if (await connection.execute(query)).scalar() == len(delivery_ids):
                    return
            await asyncio.sleep(0.05)


def _points(receiver: Receiver, path: str) -> list[int]:
    return sorted(orjson.loads(request.body)["chargePointId"] for request in receiver.on_path(path))


async def test_a_worker_told_of_new_deliveries_leases_them_in_one_claim_without_asking_whether_any_is_due(
    runtime: Runtime, start_worker: StartWorker, receiver: Receiver, subscribe: Subscribe
) -> None:
    await subscribe(receiver.on("/told", always(202)), "BootNotification")
    worker, looks = await start_worker()
    # A first delivery, however found, leaves the worker listening and with no backlog.
    warm_up = await runtime.publisher.publish([{**BOOT, "chargePointId": 1}])
    await receiver.wait_for(1, "/told", timeout_s=WITHIN_S)
    await _delivered(worker, await _delivery_ids(runtime, warm_up))

    for point in range(2, 5):
        before = len(looks.log)
        published = await runtime.publisher.publish([{**BOOT, "chargePointId": point}])
        await receiver.wait_for(point, "/told", timeout_s=WITHIN_S)
        announced = await _delivery_ids(runtime, published)
        # Leased by the claim of what the NOTIFY named, and nothing before it: no due read, no scan.
        assert looks.log[before][0] == "claim_announced", looks.log[before:]
        assert set(looks.log[before][1]) == announced
        await _delivered(worker, announced)
    assert _points(receiver, "/told") == [1, 2, 3, 4]


async def test_two_workers_told_of_the_same_deliveries_attempt_each_exactly_once(
    runtime: Runtime, start_worker: StartWorker, receiver: Receiver, subscribe: Subscribe
) -> None:
    await subscribe(receiver.on("/both", always(202)), "BootNotification")
    first, first_looks = await start_worker()
    _second, second_looks = await start_worker()
    count = 40

    event_ids: list[str] = []
    for point in range(count):
        event_ids += await runtime.publisher.publish([{**BOOT, "chargePointId": point}])
    await receiver.wait_for(count, "/both", timeout_s=WITHIN_S)
    await _delivered(first, await _delivery_ids(runtime, event_ids))

    assert _points(receiver, "/both") == list(range(count))
    async with runtime.database.reading() as connection:
        per_delivery = select(attempts.c.delivery_id).group_by(attempts.c.delivery_id)
        repeated = (await connection.execute(per_delivery.having(func.count() > 1))).all()
        attempted = (await connection.execute(select(func.count()).select_from(per_delivery.subquery()))).scalar()
    assert (repeated, attempted) == ([], count)
    # Both heard every NOTIFY and raced for its deliveries with the one-statement claim.
    for looks in (first_looks, second_looks):
        assert any(name == "claim_announced" for name, _leased in looks.log)


async def test_deliveries_too_many_to_name_in_a_notify_are_found_by_the_usual_claim(
    runtime: Runtime, start_worker: StartWorker, receiver: Receiver, subscribe: Subscribe
) -> None:
    await subscribe(receiver.on("/many", always(202)), "BootNotification")
    _worker, looks = await start_worker()
    count = 300  # 300 ids of 30 characters do not fit in PostgreSQL's 8000 bytes

    published = await runtime.publisher.publish([{**BOOT, "chargePointId": point} for point in range(count)])
    await receiver.wait_for(count, "/many", timeout_s=WITHIN_S)

    assert _points(receiver, "/many") == list(range(count))
    assert set(looks.claims_of(await _delivery_ids(runtime, published))) == {"claim_due_deliveries"}


async def test_a_delivery_no_notify_announced_is_still_found_by_the_idle_poll(
    runtime: Runtime, start_worker: StartWorker, receiver: Receiver, subscribe: Subscribe
) -> None:
    subscription = await subscribe(receiver.on("/lost", always(202)), "BootNotification")
    _worker, looks = await start_worker(worker_idle_poll_s=0.3, worker_poll_interval_s=0.3)
    # One told of first (however the worker found it, it knows of nothing left behind then).
    await runtime.publisher.publish([{**BOOT, "chargePointId": 1}])
    await receiver.wait_for(1, "/lost", timeout_s=WITHIN_S)

    # Written as a publish writes, but with no wake-up at all: as if its NOTIFY were lost.
    silent = Event(new_id("evt"), "BootNotification", orjson.dumps({**BOOT, "chargePointId": 2}), "2", utcnow())
    events = EventStore(runtime.database)
    await events.insert_event_for_subscription(silent, new_id("dlv"), subscription.subscription.id)
    await receiver.wait_for(2, "/lost", timeout_s=WITHIN_S)

    assert _points(receiver, "/lost") == [1, 2]
    assert looks.claims_of(await _delivery_ids(runtime, [silent.id])) == ["claim_due_deliveries"]


async def test_a_delivery_no_notify_announced_is_found_while_announced_ones_keep_the_worker_busy(
    runtime: Runtime, start_worker: StartWorker, receiver: Receiver, subscribe: Subscribe
) -> None:
    subscription = await subscribe(receiver.on("/busy", always(202)), "BootNotification")
    _worker, looks = await start_worker(worker_idle_poll_s=0.5)
    await runtime.publisher.publish([{**BOOT, "chargePointId": 1}])
    await receiver.wait_for(1, "/busy", timeout_s=WITHIN_S)

    # As if a dead worker's lease ran out: due, and no wake-up will ever name it.
    silent = Event(new_id("evt"), "BootNotification", orjson.dumps({**BOOT, "chargePointId": 0}), "0", utcnow())
    await EventStore(runtime.database).insert_event_for_subscription(
        silent, new_id("dlv"), subscription.subscription.id
    )
    # Announced publishes keep coming, each claimed by what its NOTIFY named, while the silent one waits.
    point = 2
    async with asyncio.timeout(WITHIN_S):
        while 0 not in _points(receiver, "/busy"):
            await runtime.publisher.publish([{**BOOT, "chargePointId": point}])
            point += 1
            await asyncio.sleep(0.05)

    assert looks.claims_of(await _delivery_ids(runtime, [silent.id])) == ["claim_due_deliveries"]
    assert any(name == "claim_announced" for name, _leased in looks.log)
