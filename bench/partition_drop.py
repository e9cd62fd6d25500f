"""How long expiry takes to drop a full day of PostgreSQL history, keeping the rows that must stay.

A throwaway database gets one day, 40 days back, of `--rows` events, deliveries and attempts (one each per
event; one delivery in 1,000 failed, one in 10,000 still pending, the rest delivered), written with COPY. Then
one expiry run (30-day retention, 90-day resend window) drops the three partitions and copies the failed and
pending deliveries, their attempts and their events to the default partition. Prints the run's time, the rows
removed and the rows kept.

Usage: python -m bench.partition_drop [--rows 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import datetime, timedelta

import asyncpg
from sqlalchemy import func, select, table, text

from chargewire.clock import utcnow
from chargewire.devtools.postgres import throwaway_cluster
from chargewire.ids import new_ids
from chargewire.store import migrate
from chargewire.store.database import Database, create_database
from chargewire.store.delivery_writes import NEW_DELIVERY_COLUMNS
from chargewire.store.dialects.postgresql_partitions import PARTITIONED, day_partition
from chargewire.store.retention import RetentionPolicy, RetentionStore

POLICY = RetentionPolicy(timedelta(days=30), timedelta(days=90), 500)
_SETUP = (
    "INSERT INTO api_tokens VALUES ('tok_bench', 'bench', repeat('0', 64), 'x', '[]', now(), NULL, NULL)",
    "INSERT INTO subscriptions (id, api_version, via, notifications, signing_secrets_encrypted, token_id, enabled,"
    " created_at, updated_at) VALUES ('sub_bench', 2, 'webhook', '[]', 'x', 'tok_bench', true, now(), now())",
)


def _status(index: int) -> str:
    if index % 10_000 == 0:
        return "pending"
    return "failed" if index % 1000 == 1 else "delivered"


async def _one_old_day(database: Database, day: datetime) -> None:
    """Replace the (empty) historic partitions with the partitions of `day`."""
    async with database.transaction() as connection:
        for name in PARTITIONED:
            await connection.execute(text(f"ALTER TABLE {name} DETACH PARTITION {name}_history"))
            await connection.execute(text(f"DROP TABLE {name}_history"))
            await connection.execute(text(day_partition(name, day)))
        for statement in _SETUP:
            await connection.execute(text(statement))


async def _fill(url: str, day: datetime, rows: int) -> None:
    """`rows` events, deliveries and attempts made an hour into `day`, with COPY."""
    at_ms = int(day.timestamp() * 1000) + 3_600_000
    event_ids, delivery_ids, attempt_ids = (new_ids(prefix, rows, at_ms) for prefix in ("evt", "dlv", "att"))
    made = day.replace(tzinfo=None) + timedelta(hours=1)
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await connection.copy_records_to_table(
            "events",
            records=[(event_ids[i], "BootNotification", b"x" * 300, str(i), made, i + 1) for i in range(rows)],
            columns=["id", "name", "payload", "entity_id", "received_at", "seq"],
        )
        await connection.copy_records_to_table(
            "deliveries",
            records=[
                (delivery_ids[i], event_ids[i], "sub_bench", "BootNotification", _status(i), 1, None, None, made, made)
                for i in range(rows)
            ],
            columns=list(NEW_DELIVERY_COLUMNS),
        )
        await connection.copy_records_to_table(
            "attempts",
            records=[(attempt_ids[i], delivery_ids[i], 1, made, 1.0, "delivered", "{}") for i in range(rows)],
            columns=["id", "delivery_id", "number", "started_at", "duration_ms", "outcome", "request_headers"],
        )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()


async def measure(url: str, rows: int) -> None:
    """Fill one old day, expire once, print what it took and kept."""
    database = create_database(url)
    try:
        await migrate.upgrade(database)
        day = (utcnow() - timedelta(days=40)).replace(hour=0, minute=0, second=0, microsecond=0)
        await _one_old_day(database, day)
        await _fill(url, day, rows)
        started = time.perf_counter()
        removed = await RetentionStore(database).expire(utcnow(), POLICY)
        took_s = time.perf_counter() - started
        async with database.reading() as connection:
            kept = {
                name: (await connection.execute(select(func.count()).select_from(table(f"{name}_default")))).scalar()
                for name in PARTITIONED
            }
        print(f"rows per table: {rows}; expiry run: {took_s:.2f} s; removed: {removed}; kept: {kept}")
    finally:
        await database.aclose()


def main() -> None:
    """Parse the arguments and measure on a throwaway cluster."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    arguments = parser.parse_args()
    with throwaway_cluster() as cluster:
        asyncio.run(measure(cluster.create_database("drop"), arguments.rows))


if __name__ == "__main__":
    main()
