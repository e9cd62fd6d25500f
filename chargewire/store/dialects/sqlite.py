"""SQLite's side of every dialect difference: datetimes kept as ISO text, one writer at a time."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Select, String, Table, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from chargewire.store.dialects.base import MINUTE_FORMAT, SelectT, StoreDialect

_SECONDS_PER_DAY = 86400.0


class SQLiteDialect:
    """The store's SQLite dialect."""

    name = "sqlite"

    def minute_text(self, moment: ColumnElement[Any]) -> ColumnElement[str]:
        """`moment`'s minute as 'YYYY-MM-DD HH:MM' text (SQLite keeps datetimes as ISO text)."""
        return func.strftime(MINUTE_FORMAT, moment)

    def seconds_between(self, later: ColumnElement[Any], earlier: ColumnElement[Any]) -> ColumnElement[Any]:
        """Seconds from `earlier` to `later`, through Julian day numbers."""
        return (func.julianday(later) - func.julianday(earlier)) * _SECONDS_PER_DAY

    def one_of(self, column: ColumnElement[str], ids: Collection[str] | None) -> ColumnElement[bool]:
        """`column IN ids`, the ids bound as one JSON array that `json_each` reads."""
        value = None if ids is None else self.ids_value(ids)
        listed = func.json_each(bindparam("ids", value, type_=String)).table_valued("value")
        return column.in_(select(listed.c.value))

    def ids_value(self, ids: Collection[str]) -> str:
        """`ids` as JSON array text."""
        return orjson.dumps(list(ids)).decode()

    def skip_locked(self, query: SelectT, of: Table) -> SelectT:
        """`query` unchanged: SQLite has one writer at a time, so a claim needs no row locks."""
        return query

    async def unlocked(self, connection: AsyncConnection, query: Select[str], of: Table) -> set[str] | None:
        """None: no other writer runs while this one holds the write lock."""
        return None


SQLITE: StoreDialect = SQLiteDialect()
