"""Bulk inserts for the hot paths (events, deliveries, attempts): one call per batch, values as drivers take them.

Ingest and the attempt log write thousands of rows a second, and SQLAlchemy's per-row parameter processing was
a quarter of ingest's CPU. The statements are still SQLAlchemy Core, compiled once per dialect; the rows carry
values as the driver takes them: datetimes and JSON through `stored_value`, payload bytes as they are (both
drivers bind `bytes` as a blob). How each database takes many rows at once is its dialect's
(`StoreDialect.insert_rows`, `insert_columns`). Going through the connection keeps the transaction it began.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Column, Dialect, Table
from sqlalchemy.ext.asyncio import AsyncConnection

from chargewire.store.dialects import dialect_named, dialect_of
from chargewire.store.tables import UtcDateTime


async def insert_rows(
    connection: AsyncConnection, table: Table, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """Insert many rows in one call (or a few), skipping SQLAlchemy's per-row work."""
    await dialect_of(connection).insert_rows(connection, table, columns, rows)


async def insert_columns(
    connection: AsyncConnection, table: Table, columns: tuple[str, ...], values: tuple[Sequence[Any], ...]
) -> None:
    """Insert rows held one sequence per column, in the transaction a statement on `connection` began."""
    await dialect_of(connection).insert_columns(connection, table, columns, values)


def stored_value(connection: AsyncConnection, column: Column[Any]) -> Callable[[Any], Any]:
    """What the dialect makes of a value of `column` before the driver sees it (SQLite keeps datetimes as text)."""
    return driver_value(connection.dialect, column)


def driver_value(dialect: Dialect, column: Column[Any]) -> Callable[[Any], Any]:
    """`stored_value` for `dialect`, outside any connection."""
    if isinstance(column.type, UtcDateTime):
        # Every publish, attempt and record converts a time or two: the dialect's own way, where it has one, is
        # several times quicker than SQLAlchemy's two processors in turn.
        time_value = dialect_named(dialect.name).time_value()
        if time_value is not None:
            return time_value
    processor = column.type.dialect_impl(dialect).bind_processor(dialect)
    return processor if processor is not None else _unchanged


def _unchanged(value: Any) -> Any:
    return value
