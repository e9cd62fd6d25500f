"""A transaction's writes described for a dialect to run: rows to lock, a guard, then statements and inserts.

The store says what to write; the dialect decides how it travels (`StoreDialect.write_guarded`): statement by
statement on PostgreSQL, all in one trip to SQLite's driver thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, Table
from sqlalchemy.sql.expression import UpdateBase


@dataclass(frozen=True, slots=True)
class Statement:
    """An INSERT, UPDATE or DELETE with its parameters."""

    statement: UpdateBase
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RowInsert:
    """Rows of `columns` to insert into `table`, one tuple per row, values as the driver takes them."""

    table: Table
    columns: tuple[str, ...]
    rows: Sequence[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class ColumnInsert:
    """Rows of `columns` to insert into `table`, one sequence per column, values as the driver takes them."""

    table: Table
    columns: tuple[str, ...]
    values: tuple[Sequence[Any], ...]


Write = Statement | RowInsert | ColumnInsert


@dataclass(frozen=True, slots=True)
class GuardedWrites:
    """Writes that happen only if `guard` changes a row.

    `locks` are read first, locking rows that other writers must not change meanwhile (where rows can be
    locked); then `guard`; then `writes` in order. Inserts without rows are left out.
    """

    locks: Sequence[Select[Any]]
    guard: Statement
    writes: Sequence[Write]
