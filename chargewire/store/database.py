"""The connection to SQLite or PostgreSQL, with each dialect difference in one marked place."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from chargewire.errors import ConfigurationError

_SQLITE_BUSY_TIMEOUT_S = 30
_WRITE_OPTION = "chargewire_write"


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


# JSON columns (attempt headers above all) go through orjson: the standard library's encoder cost more per
# attempt than the rest of the row.
_JSON_CODEC: dict[str, Any] = {"json_serializer": _json_text, "json_deserializer": orjson.loads}


class Database:
    """An async engine plus the rules for writing to it: one writer at a time on SQLite."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        # SQLite allows one writer; queueing writers here is cheaper than letting them spin on the lock.
        self._sqlite_write_lock = asyncio.Lock() if self.is_sqlite else None
        self._write_engine = engine.execution_options(**{_WRITE_OPTION: True})

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed when the block ends without an error."""
        if self._sqlite_write_lock is None:
            async with self.engine.begin() as connection:
                yield connection
            return
        async with self._sqlite_write_lock, self._write_engine.begin() as connection:
            yield connection

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """A read-only connection with a consistent view for the length of the block."""
        async with self.engine.connect() as connection:
            yield connection

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def create_database(url: str, *, echo: bool = False) -> Database:
    """Connect to the database at `url` (sqlite+aiosqlite or postgresql+asyncpg)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif backend == "sqlite" and parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    if backend == "sqlite":
        return Database(_sqlite_engine(parsed.render_as_string(hide_password=False), parsed.database, echo))
    if backend == "postgresql":
        engine = create_async_engine(
            parsed, echo=echo, pool_size=10, max_overflow=10, pool_pre_ping=True, **_JSON_CODEC
        )
        return Database(engine)
    raise ConfigurationError(f"CHARGEWIRE_DATABASE_URL: unsupported database {backend!r}; use sqlite or postgresql")


def _sqlite_engine(url: str, path: str | None, echo: bool) -> AsyncEngine:
    """Marked dialect difference: SQLite runs in WAL mode, and writers take the lock when they begin."""
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, echo=echo, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S}, **_JSON_CODEC)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself instead of the driver's implicit one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # WAL with synchronous=NORMAL survives a killed process; only a power loss can undo the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_S * 1000}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A writer that begins IMMEDIATE holds the lock from the start, so it never fails to upgrade later.
        immediate = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
