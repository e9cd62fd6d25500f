"""Marked dialect difference: a PostgreSQL connection a worker keeps for one statement it sends again and again.

A worker's announced claims and its records are each one statement, sent on asyncpg itself. Taken from the pool
for each one, the checkout and return were about a third of a record's CPU; held, the connection is taken once
while the worker runs and given back when it stops.

Its plans are PostgreSQL's usual ones. Forcing generic plans on it (`plan_cache_mode = force_generic_plan`, which
saved re-planning the announced claim, whose ids are bound as an array) made PostgreSQL's CPU per event at 200
events/s 2.19-2.30 ms against 1.51-1.52 with custom plans (bench.load, alternated): a plan made without the
bound ids reads more of the growing tables than the planning it saves.

A connection the server closed (a restart) is known closed without asking and replaced before the next statement;
one that fails with anything but a statement's own error (a refused row) is dropped, and the next statement takes
a new one. Cancelled in mid-statement, it is dropped too: it may still be busy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from chargewire.store.dialects.postgresql_driver import translated


class HeldConnection:
    """One pooled asyncpg connection kept checked out for a kind of statement (see the module)."""

    def __init__(self, engine: AsyncEngine, what: str) -> None:
        self._engine = engine
        self._what = what
        self._pooled: PoolProxiedConnection | None = None
        # asyncpg runs one statement at a time on a connection.
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def driver(self) -> AsyncIterator[asyncpg.Connection]:
        """The held asyncpg connection, to oneself for the block, its errors `translated`."""
        async with self._lock:
            driver = await self._driver()
            try:
                with translated(self._what):
                    yield driver
            except DBAPIError as error:
                if not isinstance(error.orig, asyncpg.PostgresError) or driver.is_closed():
                    self._drop()
                raise
            except BaseException:
                self._drop()
                raise

    async def close(self) -> None:
        """Give the connection back to the pool; a later statement takes another."""
        async with self._lock:
            pooled, self._pooled = self._pooled, None
            if pooled is not None:
                # In a greenlet: the pool may close the connection now (one past its size), which awaits the driver.
                await greenlet_spawn(pooled.close)

    async def _driver(self) -> asyncpg.Connection:
        pooled = self._pooled
        if pooled is not None and _driver_of(pooled).is_closed():
            self._drop()
            pooled = None
        if pooled is None:
            pooled = self._pooled = await self._engine.raw_connection()
        return _driver_of(pooled)

    def _drop(self) -> None:
        pooled, self._pooled = self._pooled, None
        if pooled is not None:
            pooled.invalidate()


def _driver_of(pooled: PoolProxiedConnection) -> asyncpg.Connection:
    driver = pooled.driver_connection
    if driver is None:
        raise RuntimeError("the pooled connection has no asyncpg connection")
    return driver
