"""PostgreSQL's side of every dialect difference: several workers, row locks, native time types."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func

from chargewire.store.dialects.base import StoreDialect


class PostgreSQLDialect:
    """The store's PostgreSQL dialect."""

    name = "postgresql"

    def minute_text(self, moment: ColumnElement[Any]) -> ColumnElement[str]:
        """`moment`'s minute as 'YYYY-MM-DD HH:MM' text."""
        return func.to_char(func.date_trunc("minute", moment), "YYYY-MM-DD HH24:MI")

    def seconds_between(self, later: ColumnElement[Any], earlier: ColumnElement[Any]) -> ColumnElement[Any]:
        """Seconds from `earlier` to `later`: the interval's epoch."""
        return func.extract("epoch", later - earlier)


POSTGRESQL: StoreDialect = PostgreSQLDialect()
