"""Which errors count as the database being unavailable for now, and which as bugs or a wrong schema."""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection, AsyncAdapt_asyncpg_dbapi
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from chargewire.errors import DatabaseUnavailable
from chargewire.store.outage import is_unavailable


def _wrapped(error: Exception) -> OperationalError:
    """As SQLAlchemy raises a driver's error."""
    return OperationalError("SELECT 1", {}, error)


def _through_sqlalchemy(error: Exception) -> BaseException:
    """An asyncpg error as SQLAlchemy's asyncpg adapter and then its cursor raise it (the pool's statements)."""
    try:
        dbapi = AsyncAdapt_asyncpg_dbapi(asyncpg)  # type: ignore[no-untyped-call]
        AsyncAdapt_asyncpg_connection._handle_exception_no_connection(dbapi, error)
    except Exception as adapted:
        return DBAPIError.instance("SELECT 1", {}, adapted, AsyncAdapt_asyncpg_dbapi.Error)
    raise AssertionError("the adapter did not raise")


# What asyncpg 0.32 raises for the next statement on a connection whose server sent its FATAL goodbye while the
# connection was idle (a restart) but whose end the client has not read yet: the protocol is still discarding
# input (state 2), as seen through a proxy that holds the end back (tests/integration/store/test_outage_*).
_GOODBYE_NOT_YET_CLOSED = "cannot switch to state 11; another operation (2) is in progress"


@pytest.mark.parametrize(
    "error",
    [
        _wrapped(sqlite3.OperationalError("database is locked")),
        _wrapped(sqlite3.OperationalError("database or disk is full")),
        _wrapped(sqlite3.OperationalError("disk I/O error")),
        ConnectionRefusedError(111, "Connection refused"),
        OSError(28, "No space left on device"),
        TimeoutError(),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        DatabaseUnavailable(),
        asyncpg.InternalClientError(_GOODBYE_NOT_YET_CLOSED),
        _through_sqlalchemy(asyncpg.InternalClientError(_GOODBYE_NOT_YET_CLOSED)),
        _through_sqlalchemy(
            asyncpg.InternalClientError('cannot switch to state 12; protocol is in the "failed" state')
        ),
        _through_sqlalchemy(asyncpg.InternalClientError("not connected")),
    ],
)
def test_an_outage_is_recognised_through_the_wrapping(error: Exception) -> None:
    assert is_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        _wrapped(sqlite3.OperationalError("no such table: worker_heartbeats")),
        ProgrammingError("SELECT 1", {}, Exception("syntax error")),
        KeyError("claim"),
        FileNotFoundError("chargewire.toml"),
        asyncpg.UndefinedTableError("relation does not exist"),
        # asyncpg's own bugs or misuse, on a connection that is fine.
        _through_sqlalchemy(
            asyncpg.InternalClientError("cannot switch to state 12; another operation (11) is in progress")
        ),
        _through_sqlalchemy(asyncpg.InternalClientError("no binary format encoder for type point (OID 600)")),
        _through_sqlalchemy(asyncpg.InternalClientError("_on_result: waiter is done")),
        _through_sqlalchemy(asyncpg.exceptions.OutdatedSchemaCacheError("cache lookup failed for type 600")),
    ],
)
def test_a_bug_or_a_wrong_schema_is_not_an_outage(error: Exception) -> None:
    assert not is_unavailable(error)
