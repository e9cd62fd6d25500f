"""SQLite's one writer at a time: write transactions queued in the process, on one connection kept for them.

SQLite allows one writer per file; queueing this process's writers is cheaper than letting them spin on the
lock, and as they take turns they can share one connection (`SerialWriter`). A publish's group commit goes before
the record flushes and claims waiting (`dialects.base.go_first`): a client awaits its answer, nobody awaits a
record's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chargewire.store.dialects.base import goes_first
from chargewire.store.dialects.sqlite_engine import BEGIN_WRITE, WRITE_OPTION, OneTripConnection

# A writer waiting behind none of the first goes after at most this many of them went before it: a record flush or
# a claim is delayed, never starved.
_MAX_PASSED = 4


class WriterTurns:
    """The writer's turns: in order of arrival, except that those going first (`go_first`) pass the others, at most
    `_MAX_PASSED` times in a row while another waits."""

    def __init__(self) -> None:
        self._held = False
        self._first: deque[asyncio.Future[None]] = deque()
        self._others: deque[asyncio.Future[None]] = deque()
        self._passed = 0  # turns given to those going first while another waited

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold the writer for the block, once the turns before this one are done."""
        await self.take()
        try:
            yield
        finally:
            self.release()

    async def take(self) -> None:
        """Hold the writer once the turns before this one are done; `release` it after."""
        if not self._held:
            self._held = True
            return
        await self._acquire(self._first if goes_first() else self._others)

    async def _acquire(self, line: deque[asyncio.Future[None]]) -> None:
        waiter = asyncio.get_running_loop().create_future()
        line.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.cancelled():
                with contextlib.suppress(ValueError):  # a release may have passed over it already
                    line.remove(waiter)
            else:
                self.release()  # the turn was given as this task was cancelled: pass it on
            raise

    def release(self) -> None:
        """Give the turn to the next waiter still waiting (the writer stays held); or free the writer."""
        for line in self._lines():
            while line:
                waiter = line.popleft()
                if not waiter.done():  # a cancelled one is skipped
                    waiter.set_result(None)
                    return
        self._held = False

    def _lines(self) -> tuple[deque[asyncio.Future[None]], ...]:
        """The lines in the order the next turn looks at them, counting the times a first passed another."""
        if self._first and (not self._others or self._passed < _MAX_PASSED):
            self._passed = self._passed + 1 if self._others else 0
            return self._first, self._others
        self._passed = 0
        return self._others, self._first


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
        self._turns = WriterTurns()
        self._engine = engine.execution_options(**{WRITE_OPTION: True})
        self._connection: AsyncConnection | None = None
        self._driver: OneTripConnection | None = None
        event.listen(engine.sync_engine, "engine_disposed", self._close_on_dispose)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, begun IMMEDIATE once the writers before it are done."""
        async with self._turns.turn():
            connection, _driver = self._kept() or await self._take_writer()
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
        # The turn taken and released without a context manager of its own: one generator less per publish.
        await self._turns.take()
        try:
            _connection, driver = self._kept() or await self._take_writer()
            driver.pending_begin = BEGIN_WRITE
            try:
                yield driver
            finally:
                driver.pending_begin = None
                if driver.in_transaction:
                    await self._roll_back(driver)
        finally:
            self._turns.release()

    def _kept(self) -> tuple[AsyncConnection, OneTripConnection] | None:
        """The writers' connection and its driver connection, if one is kept (no await: a publish's common case)."""
        if self._connection is None or self._driver is None:
            return None
        return self._connection, self._driver

    async def _take_writer(self) -> tuple[AsyncConnection, OneTripConnection]:
        """A connection for the writers from the pool, kept from now on, and its driver connection."""
        connection = await self._engine.connect()
        driver = (await connection.get_raw_connection()).driver_connection
        if not isinstance(driver, OneTripConnection):
            await connection.close()
            raise TypeError(f"a SQLite writer needs a connection of this module, not {driver!r}")
        self._connection, self._driver = connection, driver
        return connection, driver

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
