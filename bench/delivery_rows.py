"""A design measure, not a feature: what one delivery row costs PostgreSQL's server, and which part of it why.

A streamed Kafka batch writes one delivery row per record (decision 0003), by COPY in one transaction. This
writes batches of 2,000 such rows with chargewire's own `insert_columns`, for 1 KB events already in the log,
and reads the CPU of the server process that wrote them. It does so on the schema as migrated, and on it
with one thing added or taken away at a time, on one database:

- with the check that each row's event exists (the foreign key migration 0006 dropped);
- as migrated;
- without the check that its subscription exists (which deletes its deliveries with it: kept);
- without that check and without the three secondary indexes (the log, due rows, an event's deliveries).

Usage: python -m bench.delivery_rows [--batches 25]
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from typing import Any

import psutil
from sqlalchemy import text

from bench.common import write_result
from chargewire.devtools.postgres import throwaway_cluster
from chargewire.ids import new_ids
from chargewire.store import migrate
from chargewire.store.bulk_insert import insert_columns
from chargewire.store.database import Database, create_database
from chargewire.store.delivery_writes import NEW_DELIVERY_COLUMNS
from chargewire.store.tables import deliveries, events

BATCH = 2000
EVENT = "SessionMeterValuesNotification"
SUBSCRIPTION = "sub_bench"
# Each step changes the schema left by the one before it.
STEPS = (
    (
        "with the event check",
        "ALTER TABLE deliveries ADD CONSTRAINT fk_deliveries_event_id_events "
        "FOREIGN KEY (event_id) REFERENCES events (id)",
    ),
    ("as migrated", "ALTER TABLE deliveries DROP CONSTRAINT fk_deliveries_event_id_events"),
    (
        "without the subscription check",
        "ALTER TABLE deliveries DROP CONSTRAINT fk_deliveries_subscription_id_subscriptions",
    ),
    (
        "without the secondary indexes as well",
        "DROP INDEX ix_deliveries_due; DROP INDEX ix_deliveries_log; DROP INDEX ix_deliveries_event_id",
    ),
)


async def _setup(database: Database, count: int) -> list[str]:
    """A token, a subscription and `count` 1 KB events; returns the event ids."""
    now = _stored_now()
    event_ids = new_ids("evt", count)
    async with database.transaction() as connection:
        await connection.execute(
            text("INSERT INTO api_tokens VALUES ('tok_bench', 'bench', 'hash', '', '[]', :now, NULL, NULL)"),
            {"now": now},
        )
        await connection.execute(
            text(
                "INSERT INTO subscriptions (id, api_version, via, notifications, signing_secrets_encrypted, "
                "token_id, enabled, created_at, updated_at) VALUES (:id, 2, 'kafka', '[]', '', 'tok_bench', true, "
                ":now, :now)"
            ),
            {"id": SUBSCRIPTION, "now": now},
        )
        columns = ("id", "name", "payload", "entity_id", "received_at", "seq")
        values = (event_ids, [EVENT] * count, [b"x" * 1000] * count, ["1"] * count, [now] * count)
        await insert_columns(connection, events, columns, (*values, list(range(1, count + 1))))
    return event_ids


def _stored_now() -> datetime:
    """Now, as the columns store it and the driver takes it: naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def _delivery_columns(event_ids: list[str], now: datetime) -> tuple[list[Any], ...]:
    count = len(event_ids)
    return (
        new_ids("dlv", count),
        event_ids,
        [SUBSCRIPTION] * count,
        [EVENT] * count,
        ["delivered"] * count,
        [1] * count,
        [None] * count,
        [None] * count,
        [now] * count,
        [now] * count,
    )


async def _server_cpu_per_row(database: Database, event_ids: list[str], batches: int) -> float:
    """µs of the server's CPU per delivery row, writing `batches` batches of `BATCH` rows for these events."""
    now = _stored_now()
    async with database.reading() as connection:
        server = psutil.Process(int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()))
        before = sum(server.cpu_times()[:2])
        await connection.commit()
        for batch in range(batches):
            chosen = event_ids[batch * BATCH : (batch + 1) * BATCH]
            async with connection.begin():
                await connection.execute(text("SELECT 1"))  # COPY runs in the transaction a statement began
                await insert_columns(connection, deliveries, NEW_DELIVERY_COLUMNS, _delivery_columns(chosen, now))
        after = sum(server.cpu_times()[:2])
    return round((after - before) / (batches * BATCH) * 1e6, 1)


async def _measure(url: str, batches: int) -> dict[str, float]:
    database = create_database(url)
    try:
        await migrate.upgrade(database)
        event_ids = await _setup(database, batches * BATCH)
        results = {}
        for label, change in STEPS:
            async with database.transaction() as connection:
                for statement in change.split("; "):
                    await connection.execute(text(statement))
                await connection.execute(text("DELETE FROM deliveries"))
            results[label] = await _server_cpu_per_row(database, event_ids, batches)
        return results
    finally:
        await database.aclose()


def main() -> None:
    """Measure each step on a throwaway PostgreSQL cluster; write bench/results/delivery_rows.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=25)
    args = parser.parse_args()
    with throwaway_cluster() as cluster:
        results = asyncio.run(_measure(cluster.create_database("rows"), args.batches))
    write_result("delivery_rows", {"rows_per_batch": BATCH, "batches": args.batches, "server_cpu_us_per_row": results})


if __name__ == "__main__":
    main()
