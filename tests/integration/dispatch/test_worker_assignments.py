"""Assignments on PostgreSQL: a publish of a process without a worker writes its deliveries leased to a listening
worker of another process and sends them to it whole in its NOTIFY; that worker attempts them with no claim.

Every worker here polls every 30 s, so anything that arrives within seconds arrived by a NOTIFY or a lease's end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.dispatch.dispatcher import Dispatcher
from chargewire.models import DeliveryStatus
from chargewire.runtime import Runtime
from chargewire.services.worker_assignments import WorkerAssignments
from chargewire.store.dialects import postgresql_driver, postgresql_wakeups
from chargewire.store.dialects.postgresql_wakeups import listener_name
from chargewire.store.tables import deliveries
from chargewire.store.worker_store import WorkerHeartbeat
from tests.integration.dispatch.conftest import Subscribe
from tests.support.ocpp import eventually
from tests.support.receiver import Received, Receiver, Reply, always

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)

HARDWARE = load_event_types()["HardwareStatusNotification"].example
METER = load_event_types()["SessionMeterValuesNotification"].example
SLOW_POLL_S = 30.0
LEASE_S = 2.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Polls far slower than any wait here; leases short enough for one to run out within a test."""
    return settings.model_copy(update={"worker_poll_interval_s": SLOW_POLL_S, "worker_lease_s": LEASE_S})


class Claims:
    """Counts a worker's claim statements (announced and scanning)."""

    def __init__(self, runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        store = runtime.delivery_store
        for name in ("claim_announced", "claim_due_deliveries"):
            monkeypatch.setattr(store, name, self._counted(getattr(store, name)))

    def _counted(self, claim: Any) -> Any:
        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await claim(*args, **kwargs)

        return counted


@contextlib.asynccontextmanager
async def working(settings: Settings) -> AsyncIterator[tuple[Runtime, Dispatcher]]:
    """A worker in a runtime of its own (another process, as `chargewire worker` runs it)."""
    async with await Runtime.open(settings) as other:
        dispatcher = other.dispatcher()
        stop = asyncio.Event()
        task = asyncio.create_task(other.deliver(dispatcher, stop))
        try:
            yield other, dispatcher
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


async def listed(assignments: WorkerAssignments, *worker_ids: str) -> list[str]:
    """Wait until exactly `worker_ids` are the workers a publish assigns to."""
    wanted = sorted(worker_ids)
    return list(await eventually(lambda: _read_is(assignments, wanted)))


async def _read_is(assignments: WorkerAssignments, wanted: list[str]) -> list[str] | None:
    return wanted if await assignments.read_workers() == wanted else None


async def leases(runtime: Runtime) -> dict[str, tuple[str | None, str, int]]:
    """Each delivery's lease owner, status and attempts, by id."""
    query = select(deliveries.c.id, deliveries.c.lease_owner, deliveries.c.status, deliveries.c.attempt_count)
    async with runtime.database.reading() as connection:
        return {row[0]: tuple(row[1:]) for row in (await connection.execute(query)).all()}


def assignments_of(runtime: Runtime) -> WorkerAssignments:
    assignments = runtime.assign_to_workers()
    assert assignments is not None
    return assignments


async def test_publishes_assigned_to_a_listening_worker_arrive_once_and_need_no_claim(
    runtime: Runtime, settings: Settings, receiver: Receiver, subscribe: Subscribe, monkeypatch: pytest.MonkeyPatch
) -> None:
    await subscribe(receiver.on("/assigned", always(202)), "HardwareStatusNotification")
    assignments = assignments_of(runtime)
    async with working(settings) as (other, dispatcher):
        claims = Claims(other, monkeypatch)
        await listed(assignments, dispatcher.worker_id)
        # The first publish goes by a transaction (no guess yet), the others in one statement: both assign.
        for point in range(10):
            await runtime.publisher.publish([{**HARDWARE, "chargePointId": point}])
        received = await receiver.wait_for(10, "/assigned")
        await eventually(lambda: _all_delivered(runtime, 10))
    assert claims.count == 0
    assert len({request.headers["webhook-id"] for request in received}) == len(received) == 10


async def _all_delivered(runtime: Runtime, count: int) -> bool:
    rows = (await leases(runtime)).values()
    return len(rows) == count and all(row[1:] == (DeliveryStatus.DELIVERED.value, 1) for row in rows)


async def test_two_listening_workers_take_publishes_in_turn_and_send_them_without_a_claim(
    runtime: Runtime, settings: Settings, receiver: Receiver, subscribe: Subscribe, monkeypatch: pytest.MonkeyPatch
) -> None:
    assignments = assignments_of(runtime)
    async with working(settings) as (first, one), working(settings) as (second, two):
        claims = [Claims(first, monkeypatch), Claims(second, monkeypatch)]
        await listed(assignments, one.worker_id, two.worker_id)
        await subscribe(receiver.on("/shared", always(202)), "HardwareStatusNotification")
        sent: dict[str, int] = {one.worker_id: 0, two.worker_id: 0}
        for dispatcher in (one, two):
            monkeypatch.setattr(dispatcher, "assigned", _counting(dispatcher, sent))
        for point in range(6):
            await runtime.publisher.publish([{**HARDWARE, "chargePointId": point}])
        received = await receiver.wait_for(6, "/shared")
        await eventually(lambda: _all_delivered(runtime, 6))
    assert sorted(sent.values()) == [3, 3]
    assert [claim.count for claim in claims] == [0, 0]
    assert len({request.headers["webhook-id"] for request in received}) == len(received) == 6


def _counting(dispatcher: Dispatcher, sent: dict[str, int]) -> Any:
    assigned = dispatcher.assigned

    def counted(lease: Any, delivered: Any) -> None:
        sent[dispatcher.worker_id] += len(delivered)
        assigned(lease, delivered)

    return counted


async def test_what_was_assigned_to_a_worker_that_died_is_sent_once_by_another_when_its_lease_runs_out(
    runtime: Runtime, settings: Settings, receiver: Receiver, subscribe: Subscribe
) -> None:
    await subscribe(receiver.on("/orphaned", always(202)), "HardwareStatusNotification")
    assignments = assignments_of(runtime)
    # A worker that beats and listens but never sends (it dies before it heard the NOTIFY).
    dead = "wrk_died_before_hearing"
    now = utcnow()
    await runtime.worker_store.beat(WorkerHeartbeat(dead, "elsewhere", 1, now, now, {}))
    url = make_url(settings.effective_database_url).set(drivername="postgresql")
    listening = await asyncpg.connect(
        url.render_as_string(hide_password=False), server_settings={"application_name": listener_name(dead)}
    )
    try:
        await listed(assignments, dead)
        await runtime.publisher.publish([HARDWARE])
    finally:
        await listening.close()  # the worker's death closes its connections
    [(owner, status, attempts)] = (await leases(runtime)).values()
    assert (owner, status, attempts) == (dead, DeliveryStatus.PENDING.value, 0)
    async with working(settings) as (_other, dispatcher):
        # Gone from pg_stat_activity: nothing more is assigned to it.
        await listed(assignments, dispatcher.worker_id)
        await runtime.publisher.publish([{**HARDWARE, "chargePointId": 2}])
        received = await receiver.wait_for(2, "/orphaned")
        await eventually(lambda: _all_delivered(runtime, 2))
    assert len({request.headers["webhook-id"] for request in received}) == len(received) == 2


async def test_what_was_assigned_while_its_workers_listener_connected_again_is_sent_once_long_before_its_lease_ends(
    settings: Settings, receiver: Receiver, subscribe: Subscribe, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The default leases: an assignment's runs 23 s, far longer than the wait below, so what arrives was given back.
    defaults = settings.model_copy(update={"worker_lease_s": 60.0, "webhook_timeout_s": 15.0})
    async with await Runtime.open(defaults) as publishing, working(defaults) as (other, dispatcher):
        await subscribe(receiver.on("/relistened", always(202)), "HardwareStatusNotification")
        assignments = assignments_of(publishing)
        await listed(assignments, dispatcher.worker_id)
        reconnect = _held_reconnect(monkeypatch, listener_name(dispatcher.worker_id))
        claims = Claims(other, monkeypatch)
        assert await _terminate(settings, listener_name(dispatcher.worker_id)) == 1
        # Committed while the listener is away: its NOTIFY reaches no one.
        await publishing.publisher.publish([HARDWARE])
        [(owner, status, attempts)] = (await leases(publishing)).values()
        assert (owner, status, attempts) == (dispatcher.worker_id, DeliveryStatus.PENDING.value, 0)
        reconnect.set()
        received = await receiver.wait_for(1, "/relistened", timeout_s=10)
        await eventually(lambda: _all_delivered(publishing, 1))
    assert claims.count >= 1  # given back due, and claimed
    assert len({request.headers["webhook-id"] for request in received}) == len(received) == 1


async def test_a_listener_connecting_again_gives_back_nothing_its_worker_holds_from_its_own_processs_publish(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, receiver: Receiver, subscribe: Subscribe
) -> None:
    arrived, held = asyncio.Event(), asyncio.Event()

    def holding(_request: Received, _count: int) -> Reply:
        arrived.set()
        return Reply(status=202, held=held)

    defaults = settings.model_copy(update={"worker_lease_s": 60.0, "webhook_timeout_s": 15.0})
    read = _read_counted(monkeypatch)
    async with working(defaults) as (serving, dispatcher):
        await subscribe(receiver.on("/own", holding), "HardwareStatusNotification")
        await serving.publisher.publish([HARDWARE])  # handed off to its own worker: leased, untouched, in flight
        await asyncio.wait_for(arrived.wait(), 10)
        assert await _terminate(settings, listener_name(dispatcher.worker_id)) == 1
        assert await asyncio.wait_for(read.get(), 10) == []
        held.set()
        received = await receiver.wait_for(1, "/own")
        await eventually(lambda: _all_delivered(serving, 1))
    assert len(received) == receiver.arrived("/own") == 1


def _read_counted(monkeypatch: pytest.MonkeyPatch) -> asyncio.Queue[list[tuple[str, str]]]:
    """What each read of untouched assignments returns, in a queue."""
    results: asyncio.Queue[list[tuple[str, str]]] = asyncio.Queue()
    read = postgresql_wakeups.untouched_assignments

    async def counted(*args: Any) -> list[tuple[str, str]]:
        rows = await read(*args)
        results.put_nowait(rows)
        return rows

    monkeypatch.setattr(postgresql_wakeups, "untouched_assignments", counted)
    return results


def _held_reconnect(monkeypatch: pytest.MonkeyPatch, name: str) -> asyncio.Event:
    """Hold back the next connection named `name` until the event returned is set."""
    allowed = asyncio.Event()
    connect = postgresql_driver.dedicated_connection

    async def held(engine: Any, application_name: str) -> Any:
        if application_name == name:
            await allowed.wait()
        return await connect(engine, application_name)

    monkeypatch.setattr(postgresql_wakeups, "dedicated_connection", held)
    return allowed


async def _terminate(settings: Settings, application_name: str) -> int:
    """Terminate the backends of connections named `application_name`; how many there were."""
    url = make_url(settings.effective_database_url).set(drivername="postgresql")
    killer = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        terminated = await killer.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1 AND datname = current_database()",
            application_name,
        )
    finally:
        await killer.close()
    return int(terminated)


async def test_events_too_large_for_a_notify_are_written_due_and_claimed_once(
    runtime: Runtime, settings: Settings, receiver: Receiver, subscribe: Subscribe, monkeypatch: pytest.MonkeyPatch
) -> None:
    await subscribe(receiver.on("/large", always(202)), "SessionMeterValuesNotification")
    assignments = assignments_of(runtime)
    large = {**METER, "meterValues": list(METER["meterValues"]) * 20}
    async with working(settings) as (other, dispatcher):
        claims = Claims(other, monkeypatch)
        await listed(assignments, dispatcher.worker_id)
        # The first publish by a transaction (made due after its commit), the second in one statement (written due).
        for session in range(2):
            await runtime.publisher.publish([{**large, "sessionId": session}])
        received = await receiver.wait_for(2, "/large")
        await eventually(lambda: _all_delivered(runtime, 2))
    assert claims.count >= 1
    assert all(len(request.body) > 8000 for request in received)
    assert len({request.headers["webhook-id"] for request in received}) == len(received) == 2


async def test_a_worker_without_room_gives_an_assignment_back_due_and_claims_it_once_it_has_room(
    runtime: Runtime, settings: Settings, receiver: Receiver, subscribe: Subscribe, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrived, held = asyncio.Event(), asyncio.Event()

    def holding(_request: Received, _count: int) -> Reply:
        arrived.set()
        return Reply(status=202, held=held)

    await subscribe(receiver.on("/full", holding), "HardwareStatusNotification")
    assignments = assignments_of(runtime)
    async with working(settings.model_copy(update={"worker_max_in_flight": 1})) as (other, dispatcher):
        claims = Claims(other, monkeypatch)
        await listed(assignments, dispatcher.worker_id)
        await runtime.publisher.publish([HARDWARE])
        await asyncio.wait_for(arrived.wait(), 10)  # in flight, held: the worker is full
        await runtime.publisher.publish([{**HARDWARE, "chargePointId": 2}])
        await eventually(lambda: _given_back(runtime))
        held.set()
        received = await receiver.wait_for(2, "/full")
        await eventually(lambda: _all_delivered(runtime, 2))
    assert claims.count >= 1
    assert len({request.headers["webhook-id"] for request in received}) == len(received) == 2


async def _given_back(runtime: Runtime) -> bool:
    return any(owner is None for owner, _status, _attempts in (await leases(runtime)).values())
