"""A publish in a process that runs a dispatcher hands the new webhook deliveries it has room for straight to it:
written leased to its worker, sent without a claim, delivered once; a burst beyond a subscription's buffer waits in
the worker's overflow, not in a claim. What it has no room for (in-flight limits and the overflow, an open breaker)
is written due, as without a hand-off, and claimed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import select

from chargewire.catalog import load_event_types
from chargewire.config import Settings
from chargewire.dispatch.dispatcher import Dispatcher
from chargewire.models import DeliveryStatus
from chargewire.runtime import Runtime
from chargewire.store.delivery_records import ClaimedDelivery
from chargewire.store.tables import deliveries
from tests.integration.dispatch.conftest import Subscribe
from tests.support.ocpp import eventually
from tests.support.receiver import Receiver, Reply, always, in_turn

BOOT = load_event_types()["BootNotification"].example


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A poll far slower than the test, one attempt at a time per subscription (a buffer of four: four waves, and
    half the worker's room of eight; hand-offs may hold four more, half of an overflow of eight), and retries after
    the test (a worker sleeps until its retries fall due: they
    would take the receiver's replies)."""
    update = {
        "worker_poll_interval_s": 30.0,
        "worker_max_in_flight": 8,
        "worker_max_in_flight_per_subscription": 1,
        "retry_jitter": 0.0,
        "retry_schedule_s": [0.0, 60.0],
    }
    return settings.model_copy(update=update)


@pytest.fixture
def claims(runtime: Runtime) -> list[int]:
    """How many deliveries each claim of the runtime's (real) delivery store leased, in order: a scan's, or (on
    PostgreSQL, whose NOTIFY names them) a claim of the deliveries a publish announced."""
    store = runtime.delivery_store
    leased: list[int] = []

    def logged(claim: Callable[..., Awaitable[list[ClaimedDelivery]]]) -> Callable[..., Awaitable[object]]:
        async def counted(*args: object, **kwargs: object) -> object:
            claimed = await claim(*args, **kwargs)
            leased.append(len(claimed))
            return claimed

        return counted

    store.claim_due_deliveries = logged(store.claim_due_deliveries)  # type: ignore[method-assign]
    store.claim_announced = logged(store.claim_announced)  # type: ignore[method-assign]
    return leased


async def _rows(runtime: Runtime) -> list[tuple[str, str | None, int]]:
    """(status, lease owner, attempt count) of every delivery, in publish order."""
    query = select(deliveries.c.status, deliveries.c.lease_owner, deliveries.c.attempt_count).order_by(deliveries.c.id)
    async with runtime.database.reading() as connection:
        return [tuple(row) for row in (await connection.execute(query)).all()]  # type: ignore[misc]


async def _recorded(runtime: Runtime, count: int) -> bool:
    """Whether `count` deliveries are written and the first attempt of each is recorded."""
    rows = await _rows(runtime)
    return len(rows) == count and all(attempts >= 1 for _status, _owner, attempts in rows)


async def test_local_publishes_are_delivered_once_without_any_claim_when_the_worker_has_room(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe, claims: list[int], dispatcher: Dispatcher
) -> None:
    await subscribe(receiver.on("/hook", always(202)), "BootNotification")
    await asyncio.sleep(0.2)  # the dispatcher's first round is over
    claims_before = len(claims)

    for sent in range(1, 4):
        await runtime.publisher.publish([BOOT])
        await receiver.wait_for(sent, "/hook")
    await eventually(lambda: _recorded(runtime, 3))

    assert claims[claims_before:] == []
    ids = [request.headers["webhook-id"] for request in receiver.on_path("/hook")]
    assert len(ids) == len(set(ids)) == 3
    assert await _rows(runtime) == [(DeliveryStatus.DELIVERED.value, None, 1)] * 3


@pytest.mark.parametrize(("burst", "handed"), [(8, 8), (10, 8)], ids=["twice-the-buffer", "beyond-the-overflow"])
async def test_a_burst_beyond_a_subscriptions_buffer_is_handed_off_within_its_overflow_and_only_the_rest_claimed(
    runtime: Runtime,
    receiver: Receiver,
    subscribe: Subscribe,
    claims: list[int],
    dispatcher: Dispatcher,
    burst: int,
    handed: int,
) -> None:
    await subscribe(receiver.on("/slow", always(202, delay_s=0.02)), "BootNotification")
    await asyncio.sleep(0.2)

    await runtime.publisher.publish([BOOT] * burst)

    rows = await _rows(runtime)
    # One in flight and three waiting fill the subscription's buffer, four more its overflow; the rest are due.
    assert [owner for _status, owner, _count in rows] == [dispatcher.worker_id] * handed + [None] * (burst - handed)
    received = await receiver.wait_for(burst, "/slow")
    assert len({request.headers["webhook-id"] for request in received}) == burst
    await eventually(lambda: _recorded(runtime, burst))
    assert await _rows(runtime) == [(DeliveryStatus.DELIVERED.value, None, 1)] * burst
    assert sum(claims) == burst - handed


async def test_a_publish_to_a_subscription_whose_breaker_is_open_is_written_due_not_handed_off(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe, dispatcher: Dispatcher
) -> None:
    failing = [Reply(status=500)] * 5
    await subscribe(receiver.on("/flaky", in_turn(*failing, Reply(status=202))), "BootNotification")
    await asyncio.sleep(0.2)
    for sent in range(1, 6):
        await runtime.publisher.publish([BOOT])
        await receiver.wait_for(sent, "/flaky")
    await eventually(lambda: _recorded(runtime, 5))  # the fifth failure is recorded: the breaker is open

    await runtime.publisher.publish([BOOT])

    newest = (await _rows(runtime))[-1]
    assert newest == (DeliveryStatus.PENDING.value, None, 0)


async def test_a_publish_while_the_worker_is_full_is_written_due_and_delivered_once(
    settings: Settings, runtime: Runtime, receiver: Receiver, subscribe: Subscribe, claims: list[int]
) -> None:
    runtime.settings = settings.model_copy(update={"worker_max_in_flight": 2})
    running = runtime.dispatcher()
    stop = asyncio.Event()
    task = asyncio.create_task(running.run(stop))
    try:
        await subscribe(receiver.on("/slow", always(202, delay_s=0.1)), "BootNotification")
        await asyncio.sleep(0.2)

        await runtime.publisher.publish([BOOT] * 5)

        # Hand-offs fill the worker's room of two and its overflow of two more.
        owners = [owner for _status, owner, _count in await _rows(runtime)]
        assert owners == [running.worker_id] * 4 + [None]
        received = await receiver.wait_for(5, "/slow")
        assert len({request.headers["webhook-id"] for request in received}) == 5
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
