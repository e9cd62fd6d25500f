"""SQLite's side of every dialect difference: datetimes kept as ISO text, one writer at a time."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func

from chargewire.store.dialects.base import MINUTE_FORMAT, StoreDialect

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


SQLITE: StoreDialect = SQLiteDialect()
