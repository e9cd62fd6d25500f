"""A subscription moving between a webhook and Kafka while a publish is in flight: each event reaches it once.

The product rule is that every accepted event is delivered (or kept as failed) at least once, and the claims
keep it to once. A publish reads its webhook subscribers; a Kafka stream reads the numbered log. A move onto or
off Kafka splits the log at an end it reads, and each event must land on exactly one side: a delivery row, or the
stream. These tests hold a publish (or the move) at the moment that split used to go wrong: on PostgreSQL by a
lock of another connection that the held statement waits for, on SQLite by another process's write lock that
the writers queue behind (SQLite writes one transaction at a time, so its publishes and moves never overlap).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.kafka.streams import Stream
from chargewire.models import Via
from chargewire.runtime import Runtime
from chargewire.services.group_commit import PendingBatch
from chargewire.services.subscriptions import OPERATOR
from chargewire.store.database import Database, create_database
from chargewire.store.tables import deliveries, events, kafka_streams, stream_pauses
from tests.support.faults import in_a_thread, sqlite_write_locked
from tests.support.receiver import Receiver

BOOT = load_event_types()["BootNotification"].example
NAMES = ["BootNotification"]
# Bounds each wait for the held statements to reach their locks, and for deliveries to arrive.
WAIT_S = 30.0
# How long SQLite's write lock is held while the publish and the move queue behind it (well inside the 3 s
# busy timeout that the publish waits in).
SQLITE_HOLD_S = 0.5


def _boot(charge_point: int) -> dict[str, object]:
    return {**BOOT, "chargePointId": charge_point}


def _body(via: Via, callback_url: str = "http://127.0.0.1:9/boots") -> dict[str, Any]:
    body: dict[str, Any] = {"via": via.value, "notifications": NAMES}
    if via is Via.KAFKA:
        body["kafka"] = {"topic": "boots", "brokers": ["127.0.0.1:9"]}
    else:
        body["webhook"] = {"callbackUrl": callback_url}
    return body


@dataclass
class Scene:
    """A runtime with one subscription, and a connection of the test's own to hold locks on."""

    runtime: Runtime
    subscription_id: str
    other: Database

    @property
    def on_postgresql(self) -> bool:
        return self.runtime.database.sqlite_file is None

    async def lock_waiters(self) -> int:
        """How many backends of this database wait for a lock (PostgreSQL)."""
        query = text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        async with self.other.reading() as connection:
            return int((await connection.execute(query)).scalar_one())

    async def until_waiting(self, task: asyncio.Future[Any], waiters: int) -> None:
        """Return once `task` is done or `waiters` backends wait for a lock (on SQLite: once it had time to queue)."""
        if not self.on_postgresql:
            await asyncio.sleep(SQLITE_HOLD_S / 2)
            return
        async with asyncio.timeout(WAIT_S):
            while True:
                if task.done() or await self.lock_waiters() >= waiters:
                    return
                await asyncio.sleep(0.01)

    @contextlib.asynccontextmanager
    async def holding(self, statement: Any) -> AsyncIterator[None]:
        """Run `statement` in a transaction of the test's connection and keep it open (and its locks) for the
        block, then roll it back; on SQLite, hold the write lock from another process instead."""
        if not self.on_postgresql:
            assert self.runtime.database.sqlite_file is not None
            async with in_a_thread(sqlite_write_locked(self.runtime.database.sqlite_file)):
                yield
            return
        async with self.other.engine.connect() as connection:
            transaction = await connection.begin()
            await connection.execute(statement)
            try:
                yield
            finally:
                await transaction.rollback()

    async def reached(self) -> list[str]:
        """The charge points of the events that reach the subscription, as rows or in its stream, sorted."""
        rows = (
            select(events.c.entity_id)
            .join(deliveries, deliveries.c.event_id == events.c.id)
            .where(deliveries.c.subscription_id == self.subscription_id)
        )
        position = select(kafka_streams.c.position).where(kafka_streams.c.subscription_id == self.subscription_id)
        async with self.runtime.database.reading() as connection:
            reached = [str(entity_id) for entity_id in (await connection.execute(rows)).scalars()]
            at = (await connection.execute(position)).scalar_one_or_none()
        if at is not None:
            stream = Stream(self.subscription_id, int(at))
            read = await self.runtime.stream_store.read(stream, NAMES, stream.position, 1000)
            reached += [str(delivery.entity_id) for delivery in read.deliveries]
        return sorted(reached)


async def _scene(runtime: Runtime, via: Via) -> AsyncIterator[Scene]:
    owner = await runtime.tokens.create("owner", ["notifications:manage"])
    created = await runtime.subscriptions.create(owner.token, _body(via))
    other = create_database(runtime.settings.effective_database_url)
    try:
        yield Scene(runtime, created.subscription.id, other)
    finally:
        await other.aclose()


@pytest.fixture
async def kafka_scene(runtime: Runtime) -> AsyncIterator[Scene]:
    """A Kafka subscription to boots."""
    async for scene in _scene(runtime, Via.KAFKA):
        yield scene


@pytest.fixture
async def webhook_scene(runtime: Runtime) -> AsyncIterator[Scene]:
    """A webhook subscription to boots."""
    async for scene in _scene(runtime, Via.WEBHOOK):
        yield scene


def _same_id(batch: PendingBatch) -> Any:
    """An event row with the id of the batch's first event: the publish's insert waits until it is rolled back."""
    return insert(events).values(id=batch.events.ids[0], name="BootNotification", payload=b"{}", received_at=utcnow())


async def _move_while_a_publish_is_in_flight(scene: Scene, move: Awaitable[Any], guessed: bool) -> list[str]:
    """Publish a boot that has numbered and read its subscribers but not committed while `move` runs; returns the
    charge points published (with a boot before, when `guessed`, so that the held one is made from the guess)."""
    published = ["1"] if guessed else []
    if guessed:
        await scene.runtime.publisher.publish([_boot(1)])
    batch = scene.runtime.publisher.prepare([_boot(2)])
    async with scene.holding(_same_id(batch)):
        publish = asyncio.create_task(scene.runtime.publisher.write(batch))
        await scene.until_waiting(publish, 1)
        moving = asyncio.ensure_future(move)
        await scene.until_waiting(moving, 2)  # the move, once it waits for the publish
    await publish
    await moving
    return [*published, "2"]


@pytest.mark.parametrize("guessed", [False, True], ids=["read-subscribers", "guessed-subscribers"])
async def test_an_event_published_while_kafka_becomes_a_webhook_reaches_the_webhook_once(
    kafka_scene: Scene, receiver: Receiver, guessed: bool
) -> None:
    scene, runtime = kafka_scene, kafka_scene.runtime
    url = receiver.url("/boots")
    move = runtime.subscriptions.replace(OPERATOR, scene.subscription_id, _body(Via.WEBHOOK, url))

    published = await _move_while_a_publish_is_in_flight(scene, move, guessed)

    assert await scene.reached() == published
    stop = asyncio.Event()
    worker = asyncio.create_task(runtime.deliver(runtime.dispatcher(), stop))
    try:
        received = await receiver.wait_for(len(published), "/boots", timeout_s=WAIT_S)
    finally:
        stop.set()
        await asyncio.wait_for(worker, WAIT_S)
    assert sorted(str(json.loads(request.body)["chargePointId"]) for request in received) == published


@pytest.mark.parametrize("guessed", [False, True], ids=["read-subscribers", "guessed-subscribers"])
async def test_an_event_published_while_a_webhook_becomes_kafka_reaches_it_once(
    webhook_scene: Scene, guessed: bool
) -> None:
    scene = webhook_scene
    move = scene.runtime.subscriptions.replace(OPERATOR, scene.subscription_id, _body(Via.KAFKA))

    published = await _move_while_a_publish_is_in_flight(scene, move, guessed)

    assert await scene.reached() == published  # a row or the stream, never both


def _stream_row_of(subscription_id: str) -> Any:
    """The stream row a move onto Kafka inserts: the move's insert waits until this one is rolled back."""
    return insert(kafka_streams).values(subscription_id=subscription_id, position=0)


async def _pause_lock_of(scene: Scene) -> Any:
    """A lock on a pause of the stream (one that skips nothing), whose deletion ends a move off Kafka."""
    async with scene.other.transaction() as connection:
        await connection.execute(
            insert(stream_pauses).values(subscription_id=scene.subscription_id, from_seq=0, to_seq=0)
        )
    pause = select(stream_pauses.c.from_seq).where(stream_pauses.c.subscription_id == scene.subscription_id)
    return pause.with_for_update()


@pytest.mark.parametrize("backend", ["postgresql"])
@pytest.mark.parametrize("to", [Via.WEBHOOK, Via.KAFKA], ids=["kafka-to-webhook", "webhook-to-kafka"])
async def test_a_publish_made_from_subscribers_read_before_a_move_that_numbers_after_it_is_made_again(
    runtime: Runtime, to: Via
) -> None:
    async for scene in _scene(runtime, Via.KAFKA if to is Via.WEBHOOK else Via.WEBHOOK):
        # The next publish of boots is made from its guess, in one statement.
        await runtime.publisher.publish([_boot(1)])
        move = runtime.subscriptions.replace(OPERATOR, scene.subscription_id, _body(to))
        hold = await _pause_lock_of(scene) if to is Via.WEBHOOK else _stream_row_of(scene.subscription_id)
        async with scene.holding(hold):
            moving = asyncio.ensure_future(move)
            await scene.until_waiting(moving, 1)  # the move, past the numbering, waits for the stream's rows
            # Its one statement reads the subscribers as they are before the move commits, then waits to number.
            publish = asyncio.create_task(runtime.publisher.publish([_boot(2)]))
            await scene.until_waiting(publish, 2)
        await moving
        await publish

        assert await scene.reached() == ["1", "2"]
