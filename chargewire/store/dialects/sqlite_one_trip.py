"""Marked dialect difference: a SQLite write transaction's statements, sent to the driver's thread in one trip.

SQLite's one write lock is held from BEGIN IMMEDIATE to COMMIT, and each statement is a trip to the driver's
thread that waits for a turn of the event loop to come back. A Kafka stream's recording made ten such trips
under the lock; in a busy worker each waited for the loop, and the API's publishes queued behind the lock
for the whole time. Statements compiled here run back to back in the driver's thread and commit there.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect, Select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import UpdateBase

from chargewire.store.dialects.sqlite_engine import Step, commit_statements


@dataclass(frozen=True, slots=True)
class DriverStatement:
    """SQL as the driver runs it, with its parameters as the driver takes them."""

    sql: str
    parameters: tuple[Any, ...]
    # When it changes no row, the transaction is rolled back and the statements after it are not run.
    must_change_rows: bool = False
    # What makes each row it returns Python values, as SQLAlchemy's result would (None: as the driver gives them).
    rows: Callable[[Any], tuple[Any, ...]] | None = None

    def step(self) -> Step:
        """The statement as a step of `sqlite_engine`'s one trip."""
        return self.sql, self.parameters, self.must_change_rows, self.rows


def driver_statement(
    statement: UpdateBase | Select[*tuple[Any, ...]],
    dialect: Dialect,
    parameters: Mapping[str, Any] | None = None,
    *,
    must_change_rows: bool = False,
    typed_rows: bool = False,
) -> DriverStatement:
    """`statement` compiled for `dialect`'s driver with `parameters` (over the values it holds), converted by
    their column types (times, JSON); with `typed_rows`, the rows it returns are converted too.

    The compiled form is kept per statement object, so a statement built once and given its values here
    is compiled once: compiling the few statements of a recorded batch took a millisecond of each.
    """
    compiled, binds = _compiled(statement, dialect)
    values = compiled.construct_params(parameters) or {}
    converted = tuple([values[name] if processor is None else processor(values[name]) for name, processor in binds])
    rows = _row_processor(statement, dialect) if typed_rows else None
    return DriverStatement(compiled.string, converted, must_change_rows, rows)


# The parameters a compiled statement binds, in order, each with what converts its value for the driver (None:
# the value as it is); found once, as building a time's converter cost a publish more than using it.
_Binds = list[tuple[str, Callable[[Any], Any] | None]]


# Room for every statement built once and sent this way (the OCPP registry's batches alone have about 30).
@functools.lru_cache(maxsize=128)
def _compiled(statement: UpdateBase | Select[*tuple[Any, ...]], dialect: Dialect) -> tuple[SQLCompiler, _Binds]:
    compiled = statement.compile(dialect=dialect)
    binds: _Binds = []
    for name in compiled.positiontup or ():
        bind = compiled.binds[name]
        if bind.expanding:
            raise ValueError(f"{name}: a statement sent in one trip binds each value once (no expanding IN)")
        binds.append((name, bind.type.dialect_impl(dialect).bind_processor(dialect)))
    return compiled, binds


@functools.lru_cache(maxsize=128)
def _row_processor(
    statement: UpdateBase | Select[*tuple[Any, ...]], dialect: Dialect
) -> Callable[[Any], tuple[Any, ...]] | None:
    """What makes a row `statement` returns Python values (times from SQLite's text), or None when none needs it."""
    columns = _compiled(statement, dialect)[0]._result_columns
    processors = [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns]
    if not any(processors):
        return None
    pairs = [(index, processor) for index, processor in enumerate(processors) if processor is not None]

    def process(row: Any) -> tuple[Any, ...]:
        values = list(row)
        for index, processor in pairs:
            values[index] = processor(values[index])
        return tuple(values)

    return process


async def commit_in_one_trip(connection: AsyncConnection, statements: Sequence[DriverStatement]) -> bool:
    """Run `statements` in the SQLite transaction `connection` began, and commit it, in one trip.

    Returns False, having rolled back, when a statement that must change rows changed none. Nothing may run
    on `connection` afterwards: its transaction has ended.
    """
    return await commit_returning_in_one_trip(connection, statements) is not None


async def commit_returning_in_one_trip(
    connection: AsyncConnection, statements: Sequence[DriverStatement]
) -> list[list[Any]] | None:
    """`commit_in_one_trip`, returning the rows each statement returned (None where it rolled back)."""
    raw = await connection.get_raw_connection()
    return await commit_statements(raw.driver_connection, [statement.step() for statement in statements])
