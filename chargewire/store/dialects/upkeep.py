"""What retention needs done differently on each database: measuring the tables, and giving freed space back.

Each dialect makes its own (`StoreDialect.upkeep`): PostgreSQL's in `postgresql_upkeep`, SQLite's in `sqlite_upkeep`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from chargewire.store.expiry_rules import Cutoffs


@dataclass(frozen=True, slots=True)
class TableSize:
    """One table (or one partition of it): bytes on disk with its indexes, rows (estimated on PostgreSQL)."""

    table: str
    partition: str
    bytes: int
    rows: int | None
    oldest: datetime | None = None


class Upkeep(Protocol):
    """What retention needs done differently on each database."""

    async def table_sizes(self, connection: AsyncConnection) -> list[TableSize]:
        """Every chargewire table's (and partition's) size."""
        ...

    async def reclaim(self) -> int:
        """Give the space of removed rows back to the file system where the database does not; bytes given."""
        ...

    async def drop_partitions(self, now: datetime, cutoffs: Cutoffs, removed: Counter[str]) -> None:
        """Create the partitions the coming days need and drop the expired ones whole (where tables have them)."""
        ...
