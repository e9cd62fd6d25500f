"""PostgreSQL's retention upkeep: sizes from the catalog, and history tables partitioned by day.

Sizes come from `pg_total_relation_size`, row estimates from `reltuples`, partitions are named by `pg_inherits`.
The history tables are partitioned by day (`postgresql_partitions`): expired partitions are dropped whole; the
space of rows removed one by one is reused by autovacuum.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from chargewire.store.dialects.postgresql_partitions import Partitions
from chargewire.store.dialects.upkeep import TableSize
from chargewire.store.expiry_rules import Cutoffs
from chargewire.store.tables import metadata

if TYPE_CHECKING:
    from chargewire.store.database import Database


_POSTGRES_SIZES = text(
    """
    SELECT coalesce(parent.relname, child.relname) AS table_name, child.relname AS partition_name,
           pg_total_relation_size(child.oid) AS bytes, child.reltuples::bigint AS row_estimate
    FROM pg_class child
    LEFT JOIN pg_inherits link ON link.inhrelid = child.oid
    LEFT JOIN pg_class parent ON parent.oid = link.inhparent
    WHERE child.relkind = 'r' AND child.relnamespace = current_schema()::regnamespace
    ORDER BY 1, 2
    """
)


class PostgresUpkeep:
    """Marked dialect difference: PostgreSQL measures from its catalog, and keeps its history tables partitioned
    by day (`store/dialects/postgresql_partitions.py`), dropping expired partitions whole."""

    def __init__(self, database: Database) -> None:
        self._partitions = Partitions(database)

    async def drop_partitions(self, now: datetime, cutoffs: Cutoffs, removed: Counter[str]) -> None:
        """Create the coming days' partitions, then drop the expired ones, their rows that must stay kept."""
        await self._partitions.prepare(now)
        await self._partitions.drop_expired(cutoffs, removed)

    async def table_sizes(self, connection: AsyncConnection) -> list[TableSize]:
        """Sizes of every chargewire table, a partitioned one as its partitions (the parent holds no rows itself);
        reltuples is -1 before the first ANALYZE."""
        rows = (await connection.execute(_POSTGRES_SIZES)).all()
        return [
            TableSize(table, partition, int(size), None if estimate < 0 else int(estimate))
            for table, partition, size, estimate in rows
            if table in metadata.tables
        ]

    async def reclaim(self) -> int:
        """Nothing to do: autovacuum makes removed rows' space reusable, and dropped partitions free theirs."""
        return 0
