"""The connection to the database, with its rules for writing: one writer at a time on SQLite.

How each database is connected to, and every other way they differ, is its dialect's (`store.dialects`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chargewire.store.dialects import StoreDialect, dialect_named
from chargewire.store.dialects.sqlite_checkpoint import WalCheckpointer
from chargewire.store.dialects.sqlite_engine import WRITE_OPTION


class Database:
    """An async engine plus the rules for writing to it: one writer at a time on SQLite."""

    def __init__(
        self,
        engine: AsyncEngine,
        dialect: StoreDialect,
        checkpointer: WalCheckpointer | None = None,
        sqlite_file: Path | None = None,
    ) -> None:
        self.engine = engine
        self.dialect = dialect
        self.checkpointer = checkpointer
        # The file of an on-disk SQLite database, which other processes may write too; None otherwise.
        self.sqlite_file = sqlite_file
        self.is_sqlite = engine.dialect.name == "sqlite"
        # SQLite allows one writer; queueing writers here is cheaper than letting them spin on the lock.
        self._sqlite_write_lock = asyncio.Lock() if self.is_sqlite else None
        self._write_engine = engine.execution_options(**{WRITE_OPTION: True})

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed when the block ends without an error."""
        if self._sqlite_write_lock is None:
            async with self.engine.begin() as connection:
                yield connection
            return
        lock = self._sqlite_write_lock
        await lock.acquire()
        held = True
        try:
            async with self._write_engine.connect() as connection:
                try:
                    async with connection.begin():
                        yield connection
                finally:
                    # Committed or rolled back: the pool's reset of this connection is a trip to the driver's
                    # thread that the next writer need not wait for.
                    lock.release()
                    held = False
        finally:
            if held:
                lock.release()

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """A read-only connection with a consistent view for the length of the block."""
        async with self.engine.connect() as connection:
            yield connection

    async def aclose(self) -> None:
        """Stop the checkpointer and close every pooled connection."""
        if self.checkpointer is not None:
            await asyncio.to_thread(self.checkpointer.stop)
        await self.engine.dispose()


def create_database(url: str, *, echo: bool = False) -> Database:
    """Connect to the database at `url` (sqlite+aiosqlite or postgresql+asyncpg), choosing its dialect."""
    parsed = make_url(url)
    dialect = dialect_named(parsed.get_backend_name())
    opened = dialect.open_engine(parsed, echo)
    return Database(opened.engine, dialect, opened.checkpointer, opened.sqlite_file)
