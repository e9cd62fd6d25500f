"""SQLite's retention upkeep: sizes from `dbstat`, and freed pages given back by incremental vacuum.

`dbstat` reads every page (about a second per GB): it runs only after an expiry run and for `chargewire db
stats`, never per scrape. Removed rows' pages go on the freelist and are reused, so the file stops growing;
`PRAGMA incremental_vacuum` then gives them back to the file system in steps of `_VACUUM_STEP_PAGES`, each its
own short write transaction. Incremental vacuum needs `auto_vacuum=INCREMENTAL`, which an existing file only
takes with a full VACUUM (a copy of the file, every writer waiting): done here once for files up to
`_CONVERT_MAX_BYTES`; a larger one is logged, and converted by hand while the service is stopped
(docs/retention.md).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import Counter
from datetime import datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from chargewire.store.dialects.engine import DATABASE_WAIT_S
from chargewire.store.dialects.upkeep import TableSize
from chargewire.store.expiry_rules import Cutoffs
from chargewire.store.tables import metadata

logger = logging.getLogger(__name__)

_INCREMENTAL = 2
_VACUUM_STEP_PAGES = 2000
_CONVERT_MAX_BYTES = 64 * 2**20


_SQLITE_SIZES = text(
    """
    SELECT m.tbl_name, sum(s.pgsize), sum(CASE WHEN s.name = m.tbl_name AND s.pagetype = 'leaf' THEN s.ncell END)
    FROM dbstat AS s JOIN sqlite_master AS m ON m.name = s.name
    GROUP BY m.tbl_name ORDER BY 1
    """
)


class SqliteUpkeep:
    """Marked dialect difference: SQLite measures with dbstat and shrinks its file with incremental vacuum."""

    def __init__(self, path: Path | None) -> None:
        self._path = path  # None for an in-memory database: nothing to shrink
        self._warned = False

    async def table_sizes(self, connection: AsyncConnection) -> list[TableSize]:
        """Sizes and exact row counts of every chargewire table (SQLite has no partitions)."""
        rows = (await connection.execute(_SQLITE_SIZES)).all()
        return [
            TableSize(table, table, int(size), int(count or 0))
            for table, size, count in rows
            if table in metadata.tables
        ]

    async def drop_partitions(self, now: datetime, cutoffs: Cutoffs, removed: Counter[str]) -> None:
        """Nothing: SQLite has no partitions, its rows are removed one batch at a time."""

    async def reclaim(self) -> int:
        """Shrink the file by the pages expiry freed, converting a small file to incremental vacuum first."""
        if self._path is None:
            return 0
        return await asyncio.to_thread(self._reclaim, self._path)

    def _reclaim(self, path: Path) -> int:
        """In a thread, on a connection of its own (as the WAL checkpointer does): pragmas that must run alone."""
        connection = sqlite3.connect(path, timeout=DATABASE_WAIT_S, isolation_level=None)
        try:
            if not self._incremental(connection, path):
                return 0
            page_size = int(connection.execute("PRAGMA page_size").fetchone()[0])
            given = 0
            while (free := int(connection.execute("PRAGMA freelist_count").fetchone()[0])) > 0:
                # executescript steps the pragma to its end (execute frees one page); each step is one short
                # write transaction, so writers wait for a few milliseconds at most.
                connection.executescript(f"PRAGMA incremental_vacuum({_VACUUM_STEP_PAGES});")
                given += min(free, _VACUUM_STEP_PAGES) * page_size
            return given
        finally:
            connection.close()

    def _incremental(self, connection: sqlite3.Connection, path: Path) -> bool:
        """Whether the file is in incremental auto-vacuum mode, converting it now when it is small enough."""
        if int(connection.execute("PRAGMA auto_vacuum").fetchone()[0]) == _INCREMENTAL:
            return True
        size = path.stat().st_size
        if size > _CONVERT_MAX_BYTES:
            if not self._warned:
                self._warned = True
                logger.warning(
                    "%s (%d MB) does not give freed space back (auto_vacuum is off); it reuses it. Stop chargewire "
                    "and run: sqlite3 %s 'PRAGMA auto_vacuum=INCREMENTAL; VACUUM;' (docs/retention.md)",
                    path,
                    size // 2**20,
                    path,
                )
            return False
        logger.info("converting %s to incremental auto-vacuum (a VACUUM of %d kB)", path, size // 1024)
        connection.execute("PRAGMA auto_vacuum=INCREMENTAL")
        connection.execute("VACUUM")
        return True
