"""A backlog of pending deliveries written straight into the table, for tests of the plans that claim from it.

The rows are spread over past days, each day in its own partition on PostgreSQL (the historic partition, which
covers the day the test database was migrated, is replaced by days), and PostgreSQL is given its statistics, as
autovacuum gives them a minute into a backlog; SQLite is not, as chargewire never runs ANALYZE on it.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from chargewire.clock import utcnow
from chargewire.ids import first_id_at
from chargewire.models import DeliveryStatus
from chargewire.store.bulk_insert import insert_rows, stored_value
from chargewire.store.database import Database
from chargewire.store.delivery_writes import NEW_DELIVERY_COLUMNS
from chargewire.store.dialects.postgresql_partitions import day_partition
from chargewire.store.tables import deliveries

_ROW_SPACING_MS = 50
_PENDING = DeliveryStatus.PENDING.value


async def partition_by_day(database: Database, days: int) -> None:
    """On PostgreSQL, give deliveries a partition for today and each of the `days` days before, in place of the
    historic one (call it before any delivery is made); nothing on SQLite."""
    if database.dialect.name != "postgresql":
        return
    today = utcnow()
    async with database.transaction() as connection:
        await connection.execute(text("ALTER TABLE deliveries DETACH PARTITION deliveries_history"))
        await connection.execute(text("DROP TABLE deliveries_history"))
        for offset in range(days + 1):
            await connection.execute(text(day_partition("deliveries", today - timedelta(days=offset))))


async def pile_up_pending(database: Database, subscription_id: str, event_id: str, days: int, per_day: int) -> None:
    """`per_day` pending deliveries of `event_id` for `subscription_id` on each of the `days` days before today,
    each due since it was made (in the day partitions of `partition_by_day`)."""
    today = utcnow()
    async with database.transaction() as connection:
        stored = stored_value(connection, deliveries.c.created_at)
        for offset in range(days, 0, -1):
            rows = []
            for number in range(per_day):
                made = today - timedelta(days=offset, milliseconds=-number * _ROW_SPACING_MS)
                at = stored(made)
                delivery_id = first_id_at("dlv", int(made.timestamp() * 1000))
                rows.append((delivery_id, event_id, subscription_id, "BootNotification", _PENDING, 0, at, None, at, at))
            await insert_rows(connection, deliveries, NEW_DELIVERY_COLUMNS, rows)
        if connection.dialect.name == "postgresql":
            await connection.execute(text("ANALYZE deliveries"))
