"""Statements sent straight on asyncpg, past SQLAlchemy's cursor: arrays unnested into rows, errors as the cursor's.

The hot writes (a publish's few rows, COPY) skip SQLAlchemy's adapter, which costs a greenlet switch and its own
prepared-statement bookkeeping per execute; what they send is still SQLAlchemy Core, compiled once.

Connections: a statement that commits by itself takes one from the engine's pool (`pooled_driver`), or, for a writer
that sends one every few milliseconds (a publish), one kept out of the pool for it (`KeptConnection`): a checkout
and return cost ~40 % as much CPU as the statement's own round trip. Both are made with exactly the engine's URL
and connect arguments (`dedicated_connection`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
from sqlalchemy import ARRAY, FromClause, String, bindparam, event, func
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.types import TypeEngine
from sqlalchemy.util import await_, greenlet_spawn
from sqlalchemy.util.concurrency import in_greenlet

from chargewire.store.dialects.postgresql_pool import IDLE_CHECK_S

logger = logging.getLogger(__name__)

# From this many rows, a transaction's last inserts go by COPY: below it, COPY's second round trip (the server
# asks for the data, then takes it) costs more than the arrays' per-value checks of one INSERT.
COPY_FROM_ROWS = 64
_CLOSE_TIMEOUT_S = 5.0


@contextlib.contextmanager
def translated(statement: str) -> Iterator[None]:
    """asyncpg's errors as SQLAlchemy's cursor raises them: a broken constraint as IntegrityError, anything else
    as DBAPIError, with asyncpg's own as `orig` (which `refusals.refused` reads: SQLAlchemy's adapter would hide
    a value too long behind its generic error)."""
    try:
        yield
    except asyncpg.IntegrityConstraintViolationError as error:
        raise IntegrityError(statement, None, error) from error
    except (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError) as error:
        raise DBAPIError(statement, None, error) from error


@contextlib.asynccontextmanager
async def pooled_driver(engine: AsyncEngine, statement: str) -> AsyncIterator[asyncpg.Connection]:
    """The asyncpg connection of a connection straight from `engine`'s pool, outside any transaction block (so a
    statement on it commits by itself), its errors `translated`; given back when the block ends.

    A third of the CPU of an AsyncConnection's checkout and return: one greenlet where a Connection cost three.
    """
    pooled = await engine.raw_connection()
    try:
        driver = pooled.driver_connection
        if driver is None:
            raise RuntimeError(f"{statement}: the pooled connection has no asyncpg connection")
        with translated(statement):
            yield driver
    except asyncio.CancelledError:
        # Cancelled in mid-statement, the connection may still be busy with it: it is not used again.
        pooled.invalidate()
        raise
    finally:
        # In a greenlet: the pool may close the connection now (one past its size), which awaits the driver.
        await greenlet_spawn(pooled.close)


class KeptConnection:
    """One asyncpg connection of `engine`'s kept out of its pool (`dedicated_connection`) for a writer's statements,
    each outside any transaction block (so it commits by itself); closed when the engine is disposed.

    Checked before use as the pool checks its own (`postgresql_pool`): replaced when the server closed it, pinged
    after sitting idle past `idle_check_s`. One lost, timed out or cancelled in mid-statement is not used again.
    A statement that finds it in use (another writer of the same owner) takes a pooled one (`pooled_driver`).
    """

    def __init__(self, engine: AsyncEngine, idle_check_s: float = IDLE_CHECK_S) -> None:
        self._engine = engine
        self._idle_check_s = idle_check_s
        self._connection: asyncpg.Connection | None = None
        self._in_use = False
        self._used_at = 0.0
        event.listen(engine.sync_engine, "engine_disposed", self._disposed)

    @contextlib.asynccontextmanager
    async def driver(self, statement: str) -> AsyncIterator[asyncpg.Connection]:
        """The kept connection (made or checked first), its errors `translated`, for the length of the block."""
        if self._in_use:
            async with pooled_driver(self._engine, statement) as pooled:
                yield pooled
            return
        self._in_use = True
        try:
            with translated(statement):
                try:
                    yield await self._usable()
                except asyncpg.PostgresError:
                    # The server refused the statement, which rolled back by itself: the connection is as it was.
                    raise
                except BaseException:
                    # Lost, timed out, or cancelled in mid-statement or mid-check (and perhaps still busy with it).
                    self._drop()
                    raise
        finally:
            self._used_at = time.monotonic()
            self._in_use = False

    async def _usable(self) -> asyncpg.Connection:
        connection = self._connection
        if connection is not None and connection.is_closed():
            self._drop()
            connection = None
        if connection is not None and time.monotonic() - self._used_at > self._idle_check_s:
            try:
                await connection.execute("SELECT 1")
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
                self._drop()
                connection = None
        if connection is None:
            connection = self._connection = await dedicated_connection(self._engine)
        return connection

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()

    def _disposed(self, _engine: Any) -> None:
        connection = self._connection
        if connection is None:
            return
        if self._in_use or not in_greenlet():
            self._drop()
            return
        # AsyncEngine.dispose runs the sync dispose, and so this listener, in a greenlet: the close is awaited.
        self._connection = None
        await_(close_quietly(connection))


async def dedicated_connection(engine: AsyncEngine, application_name: str | None = None) -> Any:
    """An asyncpg connection taken from `engine`'s pool and detached from it: its caller's alone, and its to close;
    named `application_name` in `pg_stat_activity`, if given (one more round trip)."""
    proxy = await engine.raw_connection()
    # Read before detaching, which unlinks the pool's record that knows the driver connection.
    connection: Any = proxy.driver_connection
    # Once detached the pool forgets it (and may open another in its place), and it no longer counts against
    # the pool's size. SQLAlchemy's wrapper has no finalizer, so only the asyncpg connection needs keeping.
    proxy.detach()
    if application_name is None:
        return connection
    try:
        await connection.execute(f"SET application_name = '{application_name}'")
    except BaseException:
        await close_quietly(connection)
        raise
    return connection


async def close_quietly(connection: Any) -> None:
    """Close an asyncpg connection, aborting it if that fails; never raises."""
    if connection.is_closed():
        return
    try:
        await connection.close(timeout=_CLOSE_TIMEOUT_S)
    except Exception as error:
        # close() has aborted the connection by now; there is nothing else to release.
        logger.debug("closing a connection failed: %s", error)


def unnested(
    table: FromClause, columns: tuple[str, ...], *, bounded: bool, prefix: str = "", ordinality: str | None = None
) -> TableValuedAlias:
    """`unnest(...)` of one array parameter per column of `table` (named `prefix` + column), as rows of `columns`.

    Each array is cast to an array of its column's type: `bounded`, with the column's length, which cuts a longer
    text short; else without, so that the column refuses it as a row of COPY or VALUES would be refused. With
    `ordinality`, the rows also number themselves from 1 in a column of that name.
    """
    arrays = [bindparam(prefix + name, type_=ARRAY(_array_element(table, name, bounded))) for name in columns]
    return func.unnest(*arrays).table_valued(*columns, with_ordinality=ordinality).render_derived()


def _array_element(table: FromClause, name: str, bounded: bool) -> TypeEngine[Any]:
    column_type: TypeEngine[Any] = table.c[name].type
    if bounded or not isinstance(column_type, String) or column_type.length is None:
        return column_type
    return String()
