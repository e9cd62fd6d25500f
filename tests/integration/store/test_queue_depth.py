"""The queue depth reads only the work left (pending and failed deliveries), never the delivered history."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select, text, update

from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.ids import first_id_at, made_at_ms
from chargewire.models import DeliveryStatus
from chargewire.runtime import Runtime
from chargewire.store.dialects.postgresql_partitions import day_partition_name
from chargewire.store.tables import deliveries
from tests.support.backlog import partition_by_day, pile_up_pending
from tests.support.plans import plan_of, sent_statements

BOOT = load_event_types()["BootNotification"].example
# The due index by its SQLite name and its PostgreSQL partitions' names.
DUE_INDEX = re.compile(r"ix_deliveries_due|_status_next_attempt_at")
# A walk over a whole table or partition (or index): PostgreSQL's Seq Scan, SQLite's SCAN; the group is its name.
FULL_SCAN = re.compile(r"(?:Seq Scan on|^SCAN) (\w+)", re.MULTILINE)
DAYS = 3
PER_DAY = 5_000
# Of each day's rows (made 50 ms apart): the first 50 are pending for a retry in an hour, the next 150 pending
# and due, the next 40 failed, and the rest (4,760) delivered.
SCHEDULED_S, DUE_S, FAILED_S = 2.5, 10.0, 12.0


async def _history_with_some_work_left(runtime: Runtime) -> None:
    await partition_by_day(runtime.database, DAYS)
    owner = await runtime.tokens.create("orders", ["notifications:manage"])
    body = {"via": "webhook", "notifications": ["BootNotification"], "webhook": {"callbackUrl": "http://127.0.0.1:9/"}}
    subscription_id = (await runtime.subscriptions.create(owner.token, body)).subscription.id
    event_id = (await runtime.publisher.publish([BOOT]))[0]
    await pile_up_pending(runtime.database, subscription_id, event_id, DAYS, PER_DAY)
    later = utcnow() + timedelta(hours=1)
    # Seconds into each day's rows, and what the rows made in them become.
    changes: list[tuple[float, float, dict[str, object]]] = [
        (0, SCHEDULED_S, {"next_attempt_at": later}),
        (DUE_S, FAILED_S, {"status": DeliveryStatus.FAILED.value, "next_attempt_at": None}),
        (FAILED_S, 3600, {"status": DeliveryStatus.DELIVERED.value, "next_attempt_at": None}),
    ]
    async with runtime.database.transaction() as connection:
        for day in range(DAYS):
            first = select(deliveries.c.id).order_by(deliveries.c.id).offset(day * PER_DAY).limit(1)
            start_ms = made_at_ms((await connection.execute(first)).scalar_one())
            for from_s, to_s, values in changes:
                made = (deliveries.c.id >= _id_at(start_ms, from_s), deliveries.c.id < _id_at(start_ms, to_s))
                await connection.execute(update(deliveries).where(*made).values(**values))
        if connection.dialect.name == "postgresql":
            await connection.execute(text("ANALYZE deliveries"))


def _id_at(start_ms: int, seconds: float) -> str:
    return first_id_at("dlv", start_ms + int(seconds * 1000))


async def test_the_queue_depth_counts_due_scheduled_and_failed_deliveries_from_the_due_index_reading_no_delivered_rows(
    runtime: Runtime,
) -> None:
    await _history_with_some_work_left(runtime)

    with sent_statements(runtime.database, "SELECT deliveries.status") as sent:
        counts = await runtime.delivery_store.queue_depth(utcnow())
    async with runtime.database.reading() as connection:
        plan = await plan_of(connection, *sent[0])

    # The published event's own delivery is due as well.
    assert counts == {"due": DAYS * 150 + 1, "scheduled": DAYS * 50, "failed": DAYS * 40}
    # Counting every status walked the whole table, delivered rows and all, on every sample and scrape.
    # (PostgreSQL may walk the empty partitions of days to come: that costs nothing.)
    history = {"deliveries"} | {
        day_partition_name("deliveries", utcnow() - timedelta(days=day)) for day in range(1, DAYS + 1)
    }
    assert DUE_INDEX.search(plan), plan
    assert not set(FULL_SCAN.findall(plan)) & history, plan
