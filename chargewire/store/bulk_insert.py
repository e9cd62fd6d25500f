"""Bulk inserts for the hot paths (events, deliveries, attempts): one call per batch, values as drivers take them."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from itertools import chain
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
    unnested by a single INSERT, because an executemany costs its server a bind and execute per row.
    SQLite gets multi-row VALUES statements (`_sqlite_chunks`). Going through the connection keeps the
    transaction it began.
    """
    dialect = connection.dialect
    if dialect.name == "postgresql":
        arrays = tuple(list(values) for values in zip(*rows, strict=True))
        await connection.exec_driver_sql(_insert_sql(table, columns, dialect, as_arrays=True), arrays)
        return
    for sql, values in sqlite_inserts(table, columns, rows, dialect):
        await connection.exec_driver_sql(sql, values)


def sqlite_inserts(
    table: Table, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]], dialect: Dialect
) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """The multi-row INSERTs that write `rows` into SQLite: (SQL, its values in one flat tuple) each."""
    single_row = _insert_sql(table, columns, dialect, as_arrays=False)
    for start, count in _sqlite_chunks(len(rows), len(columns)):
        yield _multi_row_sql(single_row, count), tuple(chain.from_iterable(rows[start : start + count]))


async def insert_columns(
    connection: AsyncConnection, table: Table, columns: tuple[str, ...], values: tuple[Sequence[Any], ...]
) -> None:
    """Marked dialect difference: insert rows held one sequence per column.

    PostgreSQL takes them by binary COPY. asyncpg checks every element of an array parameter against
    abstract base classes, which made `insert_rows`' arrays cost the API 3-4 µs of CPU per ingested
    event; COPY encodes each value as it comes, and its server spends less per row too. COPY goes around
    SQLAlchemy's cursor, so its errors are translated here as that cursor would: a broken constraint as
    IntegrityError, anything else as DBAPIError. It runs in the transaction the statements before it
    began. SQLite gets `insert_rows`' multi-row statements.
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


def _sqlite_chunks(count: int, width: int) -> Iterator[tuple[int, int]]:
    """(start, rows) of the multi-row INSERTs that write `count` rows of `width` values into SQLite.

    Why not executemany: it releases the GIL around every row's step and must take it back after each, and
    while another thread runs Python each take can wait up to the interpreter's switch interval (5 ms). With a
    second thread busy, 2,000 delivery rows took seconds that way, and tens of milliseconds as a few statements.
    The row counts are powers of two, so that a table has a dozen distinct statements at most in the driver's
    statement cache, each within SQLite's limit on bound values.
    """
    largest = 1 << ((_SQLITE_MAX_VARIABLES // width).bit_length() - 1)
    start = 0
    while start < count:
        rows = min(largest, 1 << ((count - start).bit_length() - 1))
        yield start, rows
        start += rows


def _multi_row_sql(single_row: str, rows: int) -> str:
    """`single_row`'s INSERT with its VALUES tuple repeated for `rows` rows."""
    head, values = single_row.rsplit(" VALUES ", 1)
    return f"{head} VALUES {', '.join([values] * rows)}"


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


# SQLite's default SQLITE_MAX_VARIABLE_NUMBER: 32,766 since 3.32, 999 before.
_SQLITE_MAX_VARIABLES = 32_766 if sqlite3.sqlite_version_info >= (3, 32) else 999
_compiled_inserts: dict[tuple[str, tuple[str, ...], str, bool], str] = {}


def stored_value(connection: AsyncConnection, column: Column[Any]) -> Callable[[Any], Any]:
    """What the dialect makes of a value of `column` before the driver sees it (SQLite keeps datetimes as text)."""
    processor = column.type.dialect_impl(connection.dialect).bind_processor(connection.dialect)
    return processor if processor is not None else _unchanged


def _unchanged(value: Any) -> Any:
    return value
