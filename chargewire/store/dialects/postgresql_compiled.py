"""A SQLAlchemy Core statement compiled once for asyncpg, to be sent on the driver's connection itself.

Its values go through the columns' bind processors and its rows through their result processors, as SQLAlchemy's
cursor would convert them (an aware time stored naive, read back aware: `tables.UtcDateTime`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class DriverStatement:
    """A statement's SQL for asyncpg, its parameters in the order it binds them, and its columns' processors."""

    sql: str
    binds: tuple[tuple[str, Any, Processor | None], ...]  # name, the value it holds, its bind processor
    results: tuple[Processor | None, ...]

    def args(self, values: Mapping[str, Any]) -> list[Any]:
        """`values` by name as the driver takes them, in the statement's order; a name not given keeps the value the
        statement holds (its own constants)."""
        given = [(values.get(name, held), to_driver) for name, held, to_driver in self.binds]
        return [value if to_driver is None else to_driver(value) for value, to_driver in given]

    async def fetch(self, driver: asyncpg.Connection, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run the statement with `values` on `driver`; its rows as tuples, converted as SQLAlchemy's cursor does."""
        rows = await driver.fetch(self.sql, *self.args(values))
        return [self._converted(row) for row in rows]

    def _converted(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(value if read is None else read(value) for value, read in zip(row, self.results, strict=True))


def compiled_for_driver(statement: ClauseElement, dialect: Dialect) -> DriverStatement:
    """`statement` compiled for `dialect` (PostgreSQL's asyncpg), with the processors of its binds and columns."""
    compiled = statement.compile(dialect=dialect)
    if not isinstance(compiled, SQLCompiler):
        raise TypeError(f"not a SQL statement: {statement}")
    binds = tuple(
        (name, bind.effective_value, bind.type.dialect_impl(dialect).bind_processor(dialect))
        for name in compiled.positiontup or ()
        for bind in (compiled.binds[name],)
    )
    results = tuple(
        column_type.dialect_impl(dialect).result_processor(dialect, None)
        for _key, _name, _objects, column_type in compiled._result_columns
    )
    return DriverStatement(compiled.string, binds, results)
