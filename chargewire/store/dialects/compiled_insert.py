"""INSERT statements compiled once per table, columns and dialect, their parameters bound in column order."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Dialect, Insert, Table

# The statement of a bulk insert of `columns` into a table; each dialect builds its own form.
InsertBuilder = Callable[[Table, tuple[str, ...]], Insert]

_compiled_inserts: dict[tuple[str, tuple[str, ...], str, InsertBuilder], str] = {}


def insert_sql(table: Table, columns: tuple[str, ...], dialect: Dialect, build: InsertBuilder) -> str:
    """The SQL of `build(table, columns)` for `dialect`'s driver, binding `columns` by position, in order."""
    key = (table.name, columns, dialect.name, build)
    sql = _compiled_inserts.get(key)
    if sql is None:
        compiled = build(table, columns).compile(dialect=dialect, column_keys=list(columns))
        if tuple(compiled.positiontup or ()) != columns:
            raise RuntimeError(f"{table.name}: the compiled insert binds {compiled.positiontup}, not {columns}")
        sql = _compiled_inserts[key] = compiled.string
    return sql
