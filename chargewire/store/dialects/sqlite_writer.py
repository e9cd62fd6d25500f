"""SQLite's one writer at a time: write transactions queued in the process, on one connection kept for them.

SQLite allows one writer per file; queueing this process's writers is cheaper than letting them spin on the
lock, and as they take turns they can share one connection (`SerialWriter`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chargewire.store.dialects.sqlite_engine import BEGIN_WRITE, WRITE_OPTION, OneTripConnection


class SerialWriter:
    """Write transactions on a SQLite engine, one at a time, each holding the write lock from its BEGIN.

    SQLite has one writer at a time, so the writers share one connection, taken from the pool once and kept:
    taking one and giving it back (checkout and reset, their events and greenlets) cost each transaction more
    than an empty transaction's statements, and a tenth of a publish's round. A transaction through SQLAlchemy
    that fails gives the connection back to the pool, whose reset rolls back whatever the failure left open,
    and the next writer takes another.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        # SQLite allows one writer; queueing writers here is cheaper than letting them spin on the lock.
        self._lock = asyncio.Lock()
        self._engine = engine.execution_options(**{WRITE_OPTION: True})
        self._connection: AsyncConnection | None = None
        self._driver: OneTripConnection | None = None
        event.listen(engine.sync_engine, "engine_disposed", self._close_on_dispose)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, begun IMMEDIATE once the writers before it are done."""
        async with self._lock:
            connection, _driver = await self._writer()
            try:
                async with connection.begin():
                    yield connection
            except BaseException:
                await self._give_back()
                raise

    @contextlib.asynccontextmanager
    async def driver_transaction(self) -> AsyncIterator[OneTripConnection]:
        """A write transaction straight on the writers' driver connection, for statements sent in one trip
        (`commit_statements`, `commit_after_reads`): BEGIN IMMEDIATE goes with the first.

        SQLAlchemy's connection (its begin and commit, with their events and greenlets) cost a publish more CPU
        than its statements. A block that raises with the transaction open rolls it back here.
        """
        async with self._lock:
            _connection, driver = await self._writer()
            driver.pending_begin = BEGIN_WRITE
            try:
                yield driver
            finally:
                driver.pending_begin = None
                if driver.in_transaction:
                    await self._roll_back(driver)

    async def _writer(self) -> tuple[AsyncConnection, OneTripConnection]:
        """The writers' connection and its driver connection, taken from the pool if none is kept."""
        if self._connection is None or self._driver is None:
            connection = await self._engine.connect()
            driver = (await connection.get_raw_connection()).driver_connection
            if not isinstance(driver, OneTripConnection):
                await connection.close()
                raise TypeError(f"a SQLite writer needs a connection of this module, not {driver!r}")
            self._connection, self._driver = connection, driver
        return self._connection, self._driver

    async def _roll_back(self, driver: OneTripConnection) -> None:
        """Roll back what a failed block left open; a connection that cannot is given back."""
        try:
            await driver.rollback()
        except BaseException:
            await self._give_back()
            raise

    async def _give_back(self) -> None:
        """Return the writers' connection to the pool, which rolls back what is open (even if this task is
        cancelled meanwhile)."""
        connection, self._connection, self._driver = self._connection, None, None
        if connection is not None:
            await asyncio.shield(connection.close())

    def _close_on_dispose(self, _engine: Any) -> None:
        # Run in the engine's dispose, in its greenlet: the pool closed the connections it held, this one is kept.
        connection, self._connection, self._driver = self._connection, None, None
        if connection is not None and connection.sync_connection is not None:
            connection.sync_connection.invalidate()
