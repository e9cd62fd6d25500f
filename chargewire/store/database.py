"""The connection to the database: write transactions, reads, and closing.

How each database is connected to, and every other way they differ, is its dialect's (`store.dialects`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chargewire.store.dialects import StoreDialect, dialect_named
from chargewire.store.dialects.sqlite_checkpoint import WalCheckpointer


class Database:
    """An async engine with its dialect, which sets the rules for writing to it (one writer at a time on SQLite)."""

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
        self._write_transaction = dialect.write_transactions(engine)

    def transaction(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A write transaction, committed when the block ends without an error."""
        return self._write_transaction()

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
