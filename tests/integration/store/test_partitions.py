"""PostgreSQL's history tables partitioned by day: partitions made ahead, expired ones dropped whole with the rows
that must stay kept, and migration 0009 converting a database that already holds rows."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import Connection, delete, func, insert, select, text

from chargewire.clock import utcnow
from chargewire.devtools.postgres import PostgresCluster
from chargewire.ids import new_id
from chargewire.models import DeliveryStatus
from chargewire.runtime import Runtime
from chargewire.store import migrate
from chargewire.store.database import Database, create_database
from chargewire.store.dialects.postgresql_partitions import DAYS_AHEAD, PARTITIONED
from chargewire.store.retention import RetentionPolicy
from chargewire.store.tables import api_tokens, attempts, deliveries, events, subscriptions
from tests.support.history import count_in, publish_with_outcome

ON_POSTGRESQL = pytest.mark.parametrize("backend", ["postgresql"])
POLICY = RetentionPolicy(delivered=timedelta(days=30), failed=timedelta(days=90), batch_size=100)
_numbers = itertools.count()


async def _partitions(database: Database, parent: str) -> set[str]:
    query = text(
        "SELECT child.relname FROM pg_inherits JOIN pg_class child ON child.oid = inhrelid "
        "JOIN pg_class parent ON parent.oid = inhparent WHERE parent.relname = :parent"
    )
    async with database.reading() as connection:
        return set((await connection.scalars(query, {"parent": parent})).all())


async def _partition_of(runtime: Runtime, parent: str) -> str:
    """The partition that holds `parent`'s rows (each test's rows are all made now, in one partition)."""
    async with runtime.database.reading() as connection:
        query = text(f"SELECT DISTINCT tableoid::regclass::text FROM {parent}")  # noqa: S608 - a table of ours
        return str((await connection.execute(query)).scalar_one())


async def _subscribe(runtime: Runtime) -> str:
    owner = await runtime.tokens.create("owner", ["notifications:manage"])
    body = {"via": "webhook", "notifications": ["BootNotification"], "webhook": {"callbackUrl": "http://127.0.0.1:9/"}}
    return (await runtime.subscriptions.create(owner.token, body)).subscription.id


@ON_POSTGRESQL
async def test_each_run_makes_the_partitions_of_today_and_the_coming_week(runtime: Runtime) -> None:
    await runtime.retention.expire(utcnow(), POLICY)  # on the migration's day: its historic partition has today
    later = utcnow() + timedelta(days=3)

    await runtime.retention.expire(later, POLICY)

    for parent in PARTITIONED:
        made = await _partitions(runtime.database, parent)
        days = {f"{parent}_p{later + timedelta(days=offset):%Y%m%d}" for offset in range(DAYS_AHEAD + 1)}
        assert days <= made
        assert {f"{parent}_history", f"{parent}_default"} <= made


@ON_POSTGRESQL
async def test_an_expired_partition_is_dropped_whole_and_the_rows_that_must_stay_are_kept(runtime: Runtime) -> None:
    await _subscribe(runtime)
    delivered = await publish_with_outcome(runtime, 4, DeliveryStatus.DELIVERED)
    failed = await publish_with_outcome(runtime, 2, DeliveryStatus.FAILED)  # inside the resend window
    pending = await publish_with_outcome(runtime, 3, DeliveryStatus.PENDING)  # retrying
    holding = {parent: await _partition_of(runtime, parent) for parent in PARTITIONED}

    removed = await runtime.retention.expire(utcnow() + timedelta(days=31), POLICY)

    for parent, partition in holding.items():
        assert partition not in await _partitions(runtime.database, parent)
    assert (removed["events"], removed["deliveries"], removed["attempts"]) == (4, 4, 4)
    assert await count_in(runtime, events.c.id, delivered) == 0
    assert await count_in(runtime, events.c.id, failed + pending) == 5
    assert await count_in(runtime, deliveries.c.event_id, failed + pending) == 5
    async with runtime.database.reading() as connection:
        assert (await connection.execute(select(func.count()).select_from(attempts))).scalar_one() == 5
    # The survivors are in the default partition, and still go when their own time comes.
    removed = await runtime.retention.expire(utcnow() + timedelta(days=91), POLICY)
    assert removed["deliveries"] == 2
    assert await count_in(runtime, deliveries.c.event_id, pending) == 3


async def test_migration_0009_keeps_an_existing_databases_rows_as_its_historic_partition(
    postgres_cluster: PostgresCluster,
) -> None:
    database = create_database(postgres_cluster.create_database(f"convert_{next(_numbers)}"))
    try:
        async with database.transaction() as connection:
            await connection.run_sync(_upgrade_to, "0008")
            await connection.execute(insert(api_tokens), [_token()])
            await connection.execute(insert(subscriptions), [_subscription()])
            event_id, delivery_id = new_id("evt"), new_id("dlv")
            await connection.execute(insert(events), [_event(event_id)])
            await connection.execute(insert(deliveries), [_delivery(delivery_id, event_id)])

        await migrate.upgrade(database)

        async with database.reading() as connection:
            assert (await connection.execute(text("SELECT id FROM events_history"))).scalars().all() == [event_id]
            assert (await connection.execute(select(deliveries.c.id))).scalars().all() == [delivery_id]
        async with database.transaction() as connection:  # the subscription's foreign key still cascades
            await connection.execute(delete(subscriptions))
        async with database.reading() as connection:
            assert (await connection.execute(select(func.count()).select_from(deliveries))).scalar_one() == 0
    finally:
        await database.aclose()


def _upgrade_to(connection: Connection, revision: str) -> None:
    config = migrate.alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _token() -> dict[str, object]:
    return {
        "id": "tok_old",
        "name": "old",
        "token_hash": "0" * 64,
        "token_encrypted": b"x",
        "scopes": ["admin"],
        "created_at": utcnow(),
    }


def _subscription() -> dict[str, object]:
    now = utcnow()
    return {
        "id": "sub_old",
        "api_version": 2,
        "via": "webhook",
        "notifications": ["BootNotification"],
        "signing_secrets_encrypted": b"x",
        "token_id": "tok_old",
        "enabled": True,
        "created_at": now,
        "updated_at": now,
    }


def _event(event_id: str) -> dict[str, object]:
    return {"id": event_id, "name": "BootNotification", "payload": b"{}", "received_at": utcnow(), "seq": 1}


def _delivery(delivery_id: str, event_id: str) -> dict[str, object]:
    now = utcnow()
    return {
        "id": delivery_id,
        "event_id": event_id,
        "subscription_id": "sub_old",
        "event_name": "BootNotification",
        "status": "delivered",
        "attempt_count": 1,
        "created_at": now,
        "updated_at": now,
    }
