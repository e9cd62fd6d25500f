"""Bulk inserts for the hot paths (events, deliveries, attempts): one call per batch, values as drivers take them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
from sqlalchemy import ARRAY, Column, Dialect, Insert, Table, bindparam, func, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection


async def insert_rows(
    connection: AsyncConnection, table: Table, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """Marked dialect difference: insert many rows in one call, skipping SQLAlchemy's per-row work.

    Ingest and the attempt log write thousands of rows a second, and SQLAlchemy's per-row parameter
    processing was a quarter of ingest's CPU. The statements are still SQLAlchemy Core, compiled once per
    dialect; the rows carry values as the driver takes them: datetimes and JSON through `stored_value`,
    payload bytes as they are (both drivers bind `bytes` as a blob). PostgreSQL gets one array per column,
    unnested by a single INSERT, because an executemany costs its server a bind and execute per row;
    SQLite's executemany steps one prepared statement in C. Going through the connection keeps the
    transaction it began.
    """
    dialect = connection.dialect
    if dialect.name == "postgresql":
        arrays = tuple(list(values) for values in zip(*rows, strict=True))
        await connection.exec_driver_sql(_insert_sql(table, columns, dialect, as_arrays=True), arrays)
    else:
        await connection.exec_driver_sql(_insert_sql(table, columns, dialect, as_arrays=False), rows)


async def insert_columns(
    connection: AsyncConnection, table: Table, columns: tuple[str, ...], values: tuple[Sequence[Any], ...]
) -> None:
    """Marked dialect difference: insert rows held one sequence per column.

    PostgreSQL takes them by binary COPY. asyncpg checks every element of an array parameter against
    abstract base classes, which made `insert_rows`' arrays cost the API 3-4 µs of CPU per ingested
    event; COPY encodes each value as it comes, and its server spends less per row too. COPY goes around
    SQLAlchemy's cursor, so its errors are translated here as that cursor would: a broken constraint as
    IntegrityError, anything else as DBAPIError. It runs in the transaction the statements before it
    began. SQLite gets `insert_rows`' executemany.
    """
    if connection.dialect.name != "postgresql":
        await insert_rows(connection, table, columns, list(zip(*values, strict=True)))
        return
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    if driver is None or not driver.is_in_transaction():
        raise RuntimeError(f"COPY into {table.name} outside a transaction: run a statement of it first")
    statement = f"COPY {table.name}"
    try:
        await driver.copy_records_to_table(table.name, records=zip(*values, strict=True), columns=columns)
    except asyncpg.IntegrityConstraintViolationError as error:
        raise IntegrityError(statement, None, error) from error
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise DBAPIError(statement, None, error) from error


def _insert_sql(table: Table, columns: tuple[str, ...], dialect: Dialect, *, as_arrays: bool) -> str:
    key = (table.name, columns, dialect.name, as_arrays)
    sql = _compiled_inserts.get(key)
    if sql is None:
        compiled = _insert_statement(table, columns, as_arrays).compile(dialect=dialect, column_keys=list(columns))
        if tuple(compiled.positiontup or ()) != columns:
            raise RuntimeError(f"{table.name}: the compiled insert binds {compiled.positiontup}, not {columns}")
        sql = _compiled_inserts[key] = compiled.string
    return sql


def _insert_statement(table: Table, columns: tuple[str, ...], as_arrays: bool) -> Insert:
    """`INSERT INTO table (columns) VALUES (...)`, or with one array parameter per column, unnested."""
    if not as_arrays:
        return insert(table)
    arrays = func.unnest(*[bindparam(name, type_=ARRAY(table.c[name].type)) for name in columns])
    unnested = arrays.table_valued(*columns).render_derived()
    return insert(table).from_select(columns, select(*[unnested.c[name] for name in columns]))


_compiled_inserts: dict[tuple[str, tuple[str, ...], str, bool], str] = {}


def stored_value(connection: AsyncConnection, column: Column[Any]) -> Callable[[Any], Any]:
    """What the dialect makes of a value of `column` before the driver sees it (SQLite keeps datetimes as text)."""
    processor = column.type.dialect_impl(connection.dialect).bind_processor(connection.dialect)
    return processor if processor is not None else _unchanged


def _unchanged(value: Any) -> Any:
    return value
