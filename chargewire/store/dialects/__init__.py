"""Every SQLite/PostgreSQL difference of the store, one module per database behind `StoreDialect`."""

from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING

from chargewire.errors import ConfigurationError
from chargewire.store.dialects.base import StoreDialect, WakeHooks, WakeSender, WakeWatcher

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["StoreDialect", "WakeHooks", "WakeSender", "WakeWatcher", "dialect_named", "dialect_of"]

# Each dialect's module is imported when a database of its kind is first opened: a process on SQLite loads no
# PostgreSQL driver, partition planner or wake-up listener, and one on PostgreSQL no SQLite writer.
_MODULES = {
    "sqlite": ("chargewire.store.dialects.sqlite", "SQLITE"),
    "postgresql": ("chargewire.store.dialects.postgresql", "POSTGRESQL"),
}


@functools.cache
def dialect_named(name: str) -> StoreDialect:
    """The store dialect of the SQLAlchemy backend `name` ('sqlite' or 'postgresql')."""
    try:
        module, attribute = _MODULES[name]
    except KeyError:
        raise ConfigurationError(
            f"CHARGEWIRE_DATABASE_URL: unsupported database {name!r}; use sqlite or postgresql"
        ) from None
    dialect: StoreDialect = getattr(importlib.import_module(module), attribute)
    return dialect


def dialect_of(connection: AsyncConnection) -> StoreDialect:
    """The store dialect of the database `connection` is connected to."""
    return dialect_named(connection.dialect.name)
