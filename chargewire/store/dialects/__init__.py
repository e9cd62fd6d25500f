"""Every SQLite/PostgreSQL difference of the store, one module per database behind `StoreDialect`."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from chargewire.errors import ConfigurationError
from chargewire.store.dialects.base import StoreDialect, WakeHooks, WakeSender, WakeWatcher
from chargewire.store.dialects.postgresql import POSTGRESQL
from chargewire.store.dialects.sqlite import SQLITE

__all__ = ["StoreDialect", "WakeHooks", "WakeSender", "WakeWatcher", "dialect_named", "dialect_of"]

_BY_NAME = {dialect.name: dialect for dialect in (SQLITE, POSTGRESQL)}


def dialect_named(name: str) -> StoreDialect:
    """The store dialect of the SQLAlchemy backend `name` ('sqlite' or 'postgresql')."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ConfigurationError(
            f"CHARGEWIRE_DATABASE_URL: unsupported database {name!r}; use sqlite or postgresql"
        ) from None


def dialect_of(connection: AsyncConnection) -> StoreDialect:
    """The store dialect of the database `connection` is connected to."""
    return dialect_named(connection.dialect.name)
