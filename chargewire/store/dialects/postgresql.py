"""PostgreSQL's side of every dialect difference: several workers, row locks, native time types."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import ARRAY, ColumnElement, Select, String, Table, any_, bindparam, func
from sqlalchemy.ext.asyncio import AsyncConnection

from chargewire.store.dialects.base import SelectT, StoreDialect


class PostgreSQLDialect:
    """The store's PostgreSQL dialect."""

    name = "postgresql"

    def minute_text(self, moment: ColumnElement[Any]) -> ColumnElement[str]:
        """`moment`'s minute as 'YYYY-MM-DD HH:MM' text."""
        return func.to_char(func.date_trunc("minute", moment), "YYYY-MM-DD HH24:MI")

    def seconds_between(self, later: ColumnElement[Any], earlier: ColumnElement[Any]) -> ColumnElement[Any]:
        """Seconds from `earlier` to `later`: the interval's epoch."""
        return func.extract("epoch", later - earlier)

    def one_of(self, column: ColumnElement[str], ids: Collection[str] | None) -> ColumnElement[bool]:
        """`column = ANY(ids)`, the ids bound as one array."""
        value = None if ids is None else self.ids_value(ids)
        return column == any_(bindparam("ids", value, type_=ARRAY(String)))

    def ids_value(self, ids: Collection[str]) -> list[str]:
        """`ids` as a list, which asyncpg binds as an array."""
        return list(ids)

    def skip_locked(self, query: SelectT, of: Table) -> SelectT:
        """`query ... FOR UPDATE OF of SKIP LOCKED`: workers pass over the rows another worker is claiming."""
        return query.with_for_update(skip_locked=True, of=of)

    async def unlocked(self, connection: AsyncConnection, query: Select[str], of: Table) -> set[str]:
        """What `query` reads of rows of `of` no other worker has locked (SKIP LOCKED), locking them."""
        return set((await connection.execute(self.skip_locked(query, of))).scalars().all())


POSTGRESQL: StoreDialect = PostgreSQLDialect()
