"""The event store on both backends: events and their deliveries written in one all-or-nothing transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
import orjson
import pytest
from sqlalchemy import Table, event, func, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.ids import new_id, new_ids
from chargewire.models import Event, Via
from chargewire.runtime import Runtime
from chargewire.services.publish import Publisher
from chargewire.services.subscriptions import OPERATOR
from chargewire.store import migrate
from chargewire.store.database import create_database
from chargewire.store.delivery_claims import ClaimRequest
from chargewire.store.delivery_store import DeliveryStore
from chargewire.store.delivery_writes import NewDelivery, PublishLease
from chargewire.store.dialects.postgresql_announcements import encoded
from chargewire.store.dialects.postgresql_wakeups import WAKE_CHANNEL
from chargewire.store.event_store import EventStore, NewEvents, Subscriber
from chargewire.store.refusals import refused
from chargewire.store.tables import deliveries, event_sequence, events
from tests.integration.services.test_publish import _delivered_events, _subscribe
from tests.support.ocpp import eventually
from tests.support.plans import round_trips

BOOT = load_event_types()["BootNotification"].example


def _events(count: int) -> list[Event]:
    """Events of one publish, sharing their received_at, and one of a later publish."""
    received_at = utcnow()
    times = [received_at] * (count - 1) + [received_at + timedelta(seconds=1)]
    return [
        Event(id=event_id, name="BootNotification", payload=orjson.dumps(BOOT), entity_id="1042", received_at=at)
        for event_id, at in zip(new_ids("evt", count), times, strict=True)
    ]


def _batches(written: list[Event]) -> list[NewEvents]:
    """The events as the publishes that made them: one batch per received_at, in order."""
    times = list(dict.fromkeys(event.received_at for event in written))
    return [NewEvents.of([event for event in written if event.received_at == at]) for at in times]


@dataclass
class _Given:
    """A fan-out that makes the deliveries given, and keeps the subscribers it was shown."""

    made: list[NewDelivery]
    seen: list[Subscriber] = field(default_factory=list)

    def filters_wanted(self, subscribers: Sequence[Subscriber]) -> Collection[str]:
        return ()

    def deliveries(
        self, subscribers: Sequence[Subscriber], filters: Mapping[str, dict[str, Any] | None]
    ) -> list[NewDelivery]:
        self.seen.extend(subscribers)
        return self.made

    def lease(self) -> PublishLease | None:
        return None


def _to_every(subscription_id: str, new_events: list[Event]) -> list[NewDelivery]:
    return [NewDelivery(new_id("dlv"), event.id, subscription_id, event.name) for event in new_events]


async def _row_count(runtime: Runtime, table: Table) -> int:
    async with runtime.database.reading() as connection:
        return int((await connection.execute(select(func.count()).select_from(table))).scalar_one())


@pytest.fixture
async def subscription_id(runtime: Runtime) -> str:
    owner = await runtime.tokens.create("owner", ["notifications:manage"])
    body = {"via": "webhook", "notifications": ["BootNotification"], "webhook": {"callbackUrl": "http://127.0.0.1:9/"}}
    return (await runtime.subscriptions.create(owner.token, body)).subscription.id


async def test_stored_events_read_back_with_their_exact_bytes_and_times(runtime: Runtime) -> None:
    store = EventStore(runtime.database)
    written = _events(3)
    assert (await store.insert_events_with_deliveries(_batches(written), _Given([]))).count == 0
    assert await store.get_events([event.id for event in written]) == written


async def test_a_publish_larger_than_one_statement_binds_stores_every_event_and_delivery(
    runtime: Runtime, subscription_id: str
) -> None:
    # 5,001 rows take several multi-row statements of different sizes on SQLite; PostgreSQL copies them.
    store = EventStore(runtime.database)
    written = _events(5_001)
    inserted = await store.insert_events_with_deliveries(_batches(written), _Given(_to_every(subscription_id, written)))
    assert inserted.count == 5_001
    assert await store.get_events([event.id for event in written]) == written
    async with runtime.database.reading() as connection:
        rows = (await connection.execute(select(deliveries.c.event_id).order_by(deliveries.c.event_id))).all()
    assert [row.event_id for row in rows] == sorted(event.id for event in written)


async def test_deliveries_are_written_pending_and_due_when_their_events_arrive(
    runtime: Runtime, subscription_id: str
) -> None:
    store = EventStore(runtime.database)
    written = _events(2)
    fan_out = _Given(_to_every(subscription_id, written))
    assert (await store.insert_events_with_deliveries(_batches(written), fan_out)).count == 2
    assert [subscriber.subscription_id for subscriber in fan_out.seen] == [subscription_id]
    async with runtime.database.reading() as connection:
        rows = (await connection.execute(select(deliveries).order_by(deliveries.c.id))).all()
    assert [(row.event_id, row.status, row.attempt_count) for row in rows] == [
        (event.id, "pending", 0) for event in written
    ]
    assert {(row.next_attempt_at, row.created_at, row.updated_at) for row in rows} == {(written[0].received_at,) * 3}
    claimed = await DeliveryStore(runtime.database).claim_due_deliveries(
        ClaimRequest("wrk_test", written[0].received_at, utcnow() + timedelta(minutes=1), 10, {Via.WEBHOOK: 10})
    )
    assert [(delivery.event_id, delivery.payload) for delivery in claimed] == [
        (event.id, event.payload) for event in written
    ]


async def test_a_failing_delivery_row_leaves_no_event_behind(runtime: Runtime) -> None:
    store = EventStore(runtime.database)
    written = _events(3)
    with pytest.raises(IntegrityError):
        await store.insert_events_with_deliveries(_batches(written), _Given(_to_every("sub_missing", written)))
    assert await _row_count(runtime, events) == 0
    assert await _row_count(runtime, deliveries) == 0


async def test_an_event_that_cannot_be_stored_raises_a_database_error_and_leaves_nothing(runtime: Runtime) -> None:
    store = EventStore(runtime.database)
    written = _events(3)
    await store.insert_events_with_deliveries(_batches(written), _Given([]))
    # A fresh event, then one whose id is taken: the batch is refused whole.
    clashing = NewEvents.of([replace(written[0], id=new_id("evt")), written[0]])
    with pytest.raises(DBAPIError):
        await store.insert_events_with_deliveries([clashing], _Given([]))
    assert await _row_count(runtime, events) == 3


async def test_a_publish_on_sqlite_makes_no_trip_to_the_driver_thread_when_its_subscribers_and_numbers_are_as_guessed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each trip to aiosqlite's thread costs the event loop more CPU than the statement it carries.
    database = create_database(f"sqlite+aiosqlite:///{tmp_path / 'chargewire.db'}")
    try:
        await migrate.upgrade(database)
        store = EventStore(database)
        await store.insert_events_with_deliveries(_batches(_events(1)), _Given([]))  # every pooled connection opened
        trips: list[object] = []
        send = aiosqlite.Connection._execute

        async def counted(connection: aiosqlite.Connection, function: Any, *args: Any, **kwargs: Any) -> Any:
            trips.append(function)
            return await send(connection, function, *args, **kwargs)

        monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
        await store.insert_events_with_deliveries(_batches(_events(1)), _Given([]))
        # The numbering (with BEGIN), the subscribers, the insert and the COMMIT, all in the event loop's thread.
        assert trips == []
    finally:
        await database.aclose()


async def test_publishes_on_sqlite_take_no_connection_from_the_pool_after_the_first_even_when_one_is_refused(
    tmp_path: Path,
) -> None:
    # Taking a connection from the pool and giving it back was a tenth of a publish's round.
    database = create_database(f"sqlite+aiosqlite:///{tmp_path / 'chargewire.db'}")
    try:
        await migrate.upgrade(database)
        store = EventStore(database)
        first = _events(1)
        await store.insert_events_with_deliveries(_batches(first), _Given([]))
        taken: list[object] = []
        pool = database.engine.sync_engine.pool
        event.listen(pool, "checkout", lambda *args: taken.append(args))
        await store.insert_events_with_deliveries(_batches(_events(1)), _Given([]))
        with pytest.raises(DBAPIError):
            await store.insert_events_with_deliveries(_batches([*_events(1), first[0]]), _Given([]))
        # The refused publish's transaction was rolled back: the next one writes on the same connection.
        await store.insert_events_with_deliveries(_batches(_events(1)), _Given([]))
        assert taken == []
        async with database.reading() as connection:
            assert (await connection.execute(select(func.count()).select_from(events))).scalar_one() == 3
    finally:
        await database.aclose()


async def test_a_publish_makes_its_deliveries_from_the_subscribers_read_in_its_transaction_after_they_changed(
    runtime: Runtime,
) -> None:
    store = EventStore(runtime.database)
    await store.insert_events_with_deliveries(_batches(_events(1)), _Given([]))  # none subscribed then
    owner = await runtime.tokens.create("owner", ["notifications:manage"])
    body = {"via": "webhook", "notifications": ["BootNotification"], "webhook": {"callbackUrl": "http://127.0.0.1:9/"}}
    subscription_id = (await runtime.subscriptions.create(owner.token, body)).subscription.id

    written = _events(1)
    fan_out = _Given(_to_every(subscription_id, written))
    assert (await store.insert_events_with_deliveries(_batches(written), fan_out)).count == 1
    # The subscribers shown last are those the deliveries were made from.
    assert [subscriber.subscription_id for subscriber in fan_out.seen[-1:]] == [subscription_id]
    assert await _row_count(runtime, deliveries) == 1


async def test_events_are_numbered_in_order_without_gaps_when_another_store_numbered_some_in_between(
    runtime: Runtime,
) -> None:
    # Another store stands for another process publishing to the same database.
    ours, theirs = EventStore(runtime.database), EventStore(runtime.database)
    written = [_events(1), _events(2), _events(1)]
    for store, publish in zip((ours, theirs, ours), written, strict=True):
        await store.insert_events_with_deliveries(_batches(publish), _Given([]))
    async with runtime.database.reading() as connection:
        rows = (await connection.execute(select(events.c.id, events.c.seq).order_by(events.c.seq))).all()
    first = rows[0].seq
    assert [(row.id, row.seq) for row in rows] == [
        (event.id, first + index) for index, event in enumerate(event for publish in written for event in publish)
    ]


async def test_a_publish_makes_the_deliveries_of_its_subscribers_as_they_are_after_one_was_added_paused_or_refiltered(
    runtime: Runtime,
) -> None:
    # Each publish but the first is made from the subscribers the last one read; a change since must be seen.
    publisher = Publisher(EventStore(runtime.database), max_batch=10)
    trips: list[int] = []

    async def publish() -> str:
        with round_trips(runtime.database) as sent:
            [event_id] = await publisher.publish([BOOT])
            await asyncio.sleep(0)
        trips.append(len(sent))
        return event_id

    first = await _subscribe(runtime, "BootNotification")
    unchanged = [await publish(), await publish()]
    second = await _subscribe(runtime, "BootNotification")
    created = await publish()
    await runtime.subscriptions.set_enabled(OPERATOR, first, False)
    disabled = await publish()
    await runtime.subscriptions.set_enabled(OPERATOR, first, True)
    enabled = await publish()
    body = {
        "via": "webhook",
        "notifications": ["BootNotification"],
        "webhook": {"callbackUrl": "http://127.0.0.1:9/hook"},
        "filter": {"chargePointId": {"$in": [1]}},
    }
    await runtime.subscriptions.replace(OPERATOR, second, body)
    refiltered = [await publish(), await publish()]

    assert await _delivered_events(runtime) == {
        first: [*unchanged, created, enabled, *refiltered],
        second: [created, disabled, enabled],
    }
    if runtime.database.dialect.name == "postgresql":
        # The publishes whose subscribers had not changed since the last were one statement each.
        assert [trips[1], trips[-1]] == [1, 1]
        assert min(trips[2:-1]) > 1


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_value_postgresql_refuses_in_a_publish_made_from_a_guess_raises_its_error_stores_nothing_wakes_no_one(
    runtime: Runtime, subscription_id: str, database_url: str
) -> None:
    store = EventStore(runtime.database)
    kept = _events(1)
    await store.insert_events_with_deliveries(_batches(kept), _Given(_to_every(subscription_id, kept)))
    observer = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    heard: list[str] = []
    arrived = asyncio.Event()

    def hear(*notification: Any) -> None:
        heard.append(notification[3])
        arrived.set()

    try:
        await observer.add_listener(WAKE_CHANNEL, hear)
        for entity_id in ("nul\u0000", "x" * 300):
            bad = [replace(event, entity_id=entity_id) for event in _events(1)]
            with pytest.raises(DBAPIError) as raised:
                await store.insert_events_with_deliveries(_batches(bad), _Given(_to_every(subscription_id, bad)))
            assert refused(raised.value)
            assert isinstance(raised.value.orig, asyncpg.DataError)
        later = _events(1)
        made = _to_every(subscription_id, later)
        assert (await store.insert_events_with_deliveries(_batches(later), _Given(made))).woken
        # Notifications arrive in commit order: the refused publishes would have been heard before this one.
        await asyncio.wait_for(arrived.wait(), 10)
    finally:
        await observer.close()

    assert heard == [encoded([(made[0].id, subscription_id)])]
    assert await _row_count(runtime, deliveries) == 2
    async with runtime.database.reading() as connection:
        rows = (await connection.execute(select(events.c.id, events.c.seq).order_by(events.c.seq))).all()
    # The refused publishes took no number: the log has no gap.
    assert [row.id for row in rows] == [kept[0].id, later[0].id]
    assert rows[1].seq == rows[0].seq + 1


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_publish_cancelled_while_its_statement_waits_leaves_no_unusable_connection_in_the_pool(
    runtime: Runtime,
) -> None:
    store = EventStore(runtime.database)
    await store.insert_events_with_deliveries(_batches(_events(1)), _Given([]))  # the next one is made from a guess
    async with runtime.database.transaction() as holder:
        # Holds the numbering's row lock, so the publish's statement waits for it.
        await holder.execute(update(event_sequence).values(last_seq=event_sequence.c.last_seq))
        waiting = asyncio.create_task(store.insert_events_with_deliveries(_batches(_events(1)), _Given([])))
        await asyncio.sleep(0.3)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    # More publishes than the pool holds connections: each one checked out works.
    for _ in range(12):
        await store.insert_events_with_deliveries(_batches(_events(1)), _Given([]))
    async with runtime.database.reading() as connection:
        seqs = (await connection.execute(select(events.c.seq).order_by(events.c.seq))).scalars().all()
    # The cancelled statement may have committed once the lock was free; either way the log has no gap.
    assert len(seqs) in (13, 14)
    assert list(seqs) == list(range(seqs[0], seqs[0] + len(seqs)))


async def test_publishes_of_several_stores_at_once_number_their_events_without_gaps_or_repeats(
    runtime: Runtime,
) -> None:
    # Several stores stand for several API processes; on PostgreSQL, after the first, each publish is one statement.
    stores = [EventStore(runtime.database) for _ in range(3)]
    for store in stores:
        await store.insert_events_with_deliveries(_batches(_events(1)), _Given([]))
    published = [_events(2) for _ in range(30)]
    await asyncio.gather(
        *(
            stores[index % 3].insert_events_with_deliveries(_batches(written), _Given([]))
            for index, written in enumerate(published)
        )
    )
    async with runtime.database.reading() as connection:
        rows = (await connection.execute(select(events.c.id, events.c.seq).order_by(events.c.seq))).all()
    seqs = [row.seq for row in rows]
    assert seqs == list(range(seqs[0], seqs[0] + 63))
    position = {row.id: row.seq for row in rows}
    # Each publish's events took consecutive numbers, in their order.
    assert all(position[second.id] == position[first.id] + 1 for first, second in published)


async def _other_sessions(runtime: Runtime) -> list[int]:
    """The server pids of this database's sessions other than the asking one."""
    async with runtime.database.reading() as connection:
        rows = await connection.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in rows]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_publishes_made_from_a_guess_store_their_events_after_the_server_ended_every_session(
    runtime: Runtime, subscription_id: str
) -> None:
    store = EventStore(runtime.database)
    for _ in range(2):  # the second is made from a guess, on the publisher's own connection
        written = _events(1)
        await store.insert_events_with_deliveries(_batches(written), _Given(_to_every(subscription_id, written)))
    async with runtime.database.reading() as connection:
        # As a restarted server does: every session ends, with a message and a FIN.
        await connection.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    for _ in range(200):  # until the server has ended them
        if not await _other_sessions(runtime):
            break
        await asyncio.sleep(0.05)
    # A session leaves pg_stat_activity just before its FIN: give this process the time to read it, as a pool would
    # have before a checkout.
    await asyncio.sleep(0.2)

    later = _events(1)
    await store.insert_events_with_deliveries(_batches(later), _Given(_to_every(subscription_id, later)))

    assert await _row_count(runtime, events) == 3
    assert await _row_count(runtime, deliveries) == 3


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_closing_the_database_closes_the_connection_its_publishes_made_from_a_guess_kept(
    runtime: Runtime, database_url: str
) -> None:
    # Sessions are told apart by their backend pids, counted from a connection of the test's own: the runtime's
    # own connections may come and go meanwhile.
    await runtime.database.engine.dispose()
    checker = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    database = create_database(database_url)
    try:

        async def sessions() -> set[int]:
            query = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            return {row["pid"] for row in await checker.fetch(query)}

        before = await sessions()
        store = EventStore(database)
        for _ in range(2):  # the second is made from a guess, on the publisher's own connection
            await store.insert_events_with_deliveries(_batches(_events(1)), _Given([]))
        opened = await sessions() - before
        assert opened  # the publisher's (the pool's, detached), at least

        await database.aclose()

        # A backend leaves pg_stat_activity a moment after its client said goodbye.
        await eventually(lambda: _none_left(sessions, opened))
    finally:
        await database.aclose()
        await checker.close()


async def _none_left(sessions: Callable[[], Awaitable[set[int]]], opened: set[int]) -> bool:
    return not (await sessions() & opened)
