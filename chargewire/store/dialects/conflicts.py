"""INSERT ... ON CONFLICT, which SQLite and PostgreSQL spell alike through each one's own SQLAlchemy construct."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import Insert

# What an upsert sets from the row it proposed (`excluded`): column name -> value or expression.
ConflictUpdate = Callable[[Any], Mapping[str, Any]]


class _ConflictInsert(Protocol):
    """What `sqlalchemy.dialects.sqlite.Insert` and `...postgresql.Insert` both offer."""

    @property
    def excluded(self) -> Any: ...

    def on_conflict_do_nothing(self, *, index_elements: Sequence[str]) -> Insert: ...

    def on_conflict_do_update(self, *, index_elements: Sequence[str], set_: Mapping[str, Any]) -> Insert: ...


def on_conflict(statement: _ConflictInsert, keys: Sequence[str], update: ConflictUpdate | None) -> Insert:
    """`statement ON CONFLICT (keys)`: DO UPDATE SET what `update` makes of `excluded`, or DO NOTHING when None."""
    if update is None:
        return statement.on_conflict_do_nothing(index_elements=keys)
    return statement.on_conflict_do_update(index_elements=keys, set_=update(statement.excluded))
