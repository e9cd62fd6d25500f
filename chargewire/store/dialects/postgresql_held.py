"""Marked dialect difference: a PostgreSQL connection a worker keeps for one statement it sends again and again.

A worker's announced claims and its records are each one statement, sent on asyncpg itself. Taken from the pool
for each one, the checkout and return were about a third of a record's CPU; held, the connection is taken once
while the worker runs and closed when it stops. It plans with `plan_cache_mode = force_generic_plan` for its
whole session: the announced claim binds its ids as an array and their range, and PostgreSQL planned it afresh
on every call (a custom plan each time, 0.48 ms of the server's CPU per claim). That setting never reaches the
pool: the connection is closed, not given back.

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

GENERIC_PLANS = "SET plan_cache_mode = force_generic_plan"


class HeldConnection:
    """One pooled asyncpg connection kept checked out for a kind of statement, with generic plans (see the module)."""

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
        """Close the connection (its session's setting must not reach the pool); a later statement opens another."""
        async with self._lock:
            pooled, self._pooled = self._pooled, None
            if pooled is not None:
                # Invalidated, it is closed (in a greenlet: closing awaits the driver) and its place in the pool
                # freed; given back, it would keep its setting.
                await greenlet_spawn(pooled.invalidate)

    async def _driver(self) -> asyncpg.Connection:
        pooled = self._pooled
        if pooled is not None and _driver_of(pooled).is_closed():
            self._drop()
            pooled = None
        if pooled is None:
            pooled = await self._engine.raw_connection()
            try:
                with translated(self._what):
                    await _driver_of(pooled).execute(GENERIC_PLANS)
            except BaseException:
                pooled.invalidate()
                raise
            self._pooled = pooled
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
