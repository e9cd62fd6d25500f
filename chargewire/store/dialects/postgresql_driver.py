"""Statements sent straight on asyncpg, past SQLAlchemy's cursor: arrays unnested into rows, errors as the cursor's.

The hot writes (a publish's few rows, COPY) skip SQLAlchemy's adapter, which costs a greenlet switch and its own
prepared-statement bookkeeping per execute; what they send is still SQLAlchemy Core, compiled once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
from sqlalchemy import ARRAY, FromClause, String, bindparam, func
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlalchemy.types import TypeEngine
from sqlalchemy.util import greenlet_spawn

# From this many rows, a transaction's last inserts go by COPY: below it, COPY's second round trip (the server
# asks for the data, then takes it) costs more than the arrays' per-value checks of one INSERT.
COPY_FROM_ROWS = 64


@contextlib.contextmanager
def translated(statement: str) -> Iterator[None]:
    """asyncpg's errors as SQLAlchemy's cursor raises them: a broken constraint as IntegrityError, anything else
    as DBAPIError, with asyncpg's own as `orig` (which `refusals.refused` reads: SQLAlchemy's adapter would hide
    a value too long behind its generic error)."""
    try:
        yield
    except asyncpg.IntegrityConstraintViolationError as error:
        raise IntegrityError(statement, None, error) from error
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:
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
