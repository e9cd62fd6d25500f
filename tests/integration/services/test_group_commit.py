"""Concurrent publishes share transactions, and every one is stored before it is answered."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, cast

import orjson
import pytest
from sqlalchemy import select

from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.errors import IdempotencyKeyTaken
from chargewire.ids import new_id
from chargewire.runtime import Runtime
from chargewire.services.group_commit import GroupCommitter, PendingBatch
from chargewire.services.publish import Publisher
from chargewire.store.delivery_records import ClaimedDelivery
from chargewire.store.delivery_writes import NewDelivery, PublishLease
from chargewire.store.event_store import EventStore, FanOut, Inserted, NewEvents
from chargewire.store.idempotency_store import IdempotentPublish
from chargewire.store.refusals import refused
from chargewire.store.tables import deliveries

BOOT = load_event_types()["BootNotification"].example


class CountingStore(EventStore):
    """The real store, counting its write transactions."""

    transactions = 0

    async def insert_events_with_deliveries(
        self, batches: Sequence[NewEvents], fan_out: FanOut, **options: Any
    ) -> Inserted:
        self.transactions += 1
        return await super().insert_events_with_deliveries(batches, fan_out, **options)


class FailingStore(EventStore):
    """A store whose database refuses every write."""

    async def insert_events_with_deliveries(
        self, batches: Sequence[NewEvents], fan_out: FanOut, **options: Any
    ) -> Inserted:
        raise ConnectionError("database went away")


class RecordingHandOff:
    """A hand-off that takes every delivery, keeping what it reserved, took and gave back."""

    def __init__(self) -> None:
        self.reserved: list[PublishLease] = []
        self.taken: list[tuple[PublishLease, list[str]]] = []
        self.cancelled: list[PublishLease] = []

    def reserve(self, deliveries: Sequence[NewDelivery]) -> PublishLease | None:
        lease = PublishLease(
            "wrk_test", utcnow(), frozenset(d.id for d in deliveries), tuple(d.subscription_id for d in deliveries)
        )
        self.reserved.append(lease)
        return lease

    def take(self, lease: PublishLease, deliveries: Sequence[ClaimedDelivery]) -> None:
        self.taken.append((lease, [delivery.id for delivery in deliveries]))

    def cancel(self, lease: PublishLease) -> None:
        self.cancelled.append(lease)


async def test_concurrent_single_publishes_are_grouped_and_all_stored(runtime: Runtime) -> None:
    store = CountingStore(runtime.database)
    publisher = Publisher(store, max_batch=10)
    results = await asyncio.gather(*(publisher.publish([BOOT]) for _ in range(200)))
    ids = [event_id for result in results for event_id in result]
    assert len(set(ids)) == 200
    assert {event.id for event in await store.get_events(ids)} == set(ids)
    assert store.transactions < 200


async def test_a_database_error_reaches_every_writer_of_the_group(runtime: Runtime) -> None:
    publisher = Publisher(FailingStore(runtime.database), max_batch=10)
    results = await asyncio.gather(*(publisher.publish([BOOT]) for _ in range(20)), return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)


async def test_a_lone_publish_is_written_at_once(runtime: Runtime) -> None:
    store = CountingStore(runtime.database)
    [event_id] = await Publisher(store, max_batch=10).publish([BOOT])
    assert store.transactions == 1
    assert [event.id for event in await store.get_events([event_id])] == [event_id]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_writer_that_gives_up_does_not_abort_the_others(runtime: Runtime) -> None:
    publisher = Publisher(EventStore(runtime.database), max_batch=10)
    tasks = [asyncio.create_task(publisher.publish([BOOT])) for _ in range(20)]
    await asyncio.sleep(0)
    tasks[0].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert all(isinstance(result, list) for result in results[1:])


def _pending(entity_id: str) -> PendingBatch:
    events = NewEvents(
        ids=[new_id("evt")],
        names=["BootNotification"],
        payloads=[orjson.dumps(BOOT)],
        entity_ids=[entity_id],
        received_at=utcnow(),
    )
    return PendingBatch(events, [BOOT])


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_row_the_database_refuses_fails_only_its_own_writer_in_the_group(runtime: Runtime) -> None:
    committer = GroupCommitter(EventStore(runtime.database))
    # Past publish's checks, as a caller of the committer could: PostgreSQL refuses the 300-character id.
    batches = [_pending("x" * 300 if index == 3 else f"cp-{index}") for index in range(10)]

    results = await asyncio.gather(*(committer.write(batch) for batch in batches), return_exceptions=True)

    assert [index for index, result in enumerate(results) if isinstance(result, BaseException)] == [3]
    assert refused(cast(BaseException, results[3]))
    stored = await EventStore(runtime.database).get_events([batch.events.ids[0] for batch in batches])
    assert len(stored) == 9


async def test_a_writer_whose_idempotency_key_is_taken_fails_alone_and_the_rest_of_its_group_is_stored(
    runtime: Runtime,
) -> None:
    committer = GroupCommitter(EventStore(runtime.database))
    first = _pending("cp-first")
    await committer.write(replace(first, claim=IdempotentPublish("tok_1", "key", "hash", first.events.ids)))
    # As another process would, having looked the key up before it was stored.
    batches = [_pending(f"cp-{index}") for index in range(10)]
    batches[3] = replace(batches[3], claim=IdempotentPublish("tok_1", "key", "hash", batches[3].events.ids))
    batches[5] = replace(batches[5], claim=IdempotentPublish("tok_2", "key", "hash", batches[5].events.ids))

    results = await asyncio.gather(*(committer.write(batch) for batch in batches), return_exceptions=True)

    assert [index for index, result in enumerate(results) if isinstance(result, BaseException)] == [3]
    assert isinstance(results[3], IdempotencyKeyTaken)
    stored = await EventStore(runtime.database).get_events([batch.events.ids[0] for batch in batches])
    assert len(stored) == 9


async def test_a_hand_off_keeps_only_the_room_of_the_deliveries_written_when_subscribers_changed_since_the_last_publish(
    runtime: Runtime,
) -> None:
    owner = await runtime.tokens.create("owner", ["notifications:manage"])
    body = {"via": "webhook", "notifications": ["BootNotification"], "webhook": {"callbackUrl": "http://127.0.0.1:9/"}}
    await runtime.subscriptions.create(owner.token, body)
    committer = GroupCommitter(EventStore(runtime.database))
    await committer.write(_batch())
    hand_off = committer.hand_off = RecordingHandOff()
    await runtime.subscriptions.create(owner.token, body)

    made = await committer.write(_batch())

    assert made.handed == 2
    [(lease, taken)] = hand_off.taken
    # Every other reservation (SQLite's, made from the subscribers it guessed) was given back.
    assert [other for other in hand_off.reserved if other is not lease] == hand_off.cancelled
    async with runtime.database.reading() as connection:
        leased = select(deliveries.c.id).where(deliveries.c.lease_owner == "wrk_test")
        rows = (await connection.execute(leased)).all()
    assert sorted(taken) == sorted(lease.delivery_ids) == sorted(row.id for row in rows)


def _batch() -> PendingBatch:
    events = NewEvents([new_id("evt")], ["BootNotification"], [orjson.dumps(BOOT)], ["1042"], utcnow())
    return PendingBatch(events, [BOOT])
