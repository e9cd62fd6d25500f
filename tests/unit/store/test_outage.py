"""Which errors count as the database being unavailable for now, and which as bugs or a wrong schema."""

from __future__ import annotations

import sqlite3

import asyncpg
import pytest
from sqlalchemy.exc import OperationalError, ProgrammingError

from chargewire.errors import DatabaseUnavailable
from chargewire.store.outage import is_unavailable


def _wrapped(error: Exception) -> OperationalError:
    """As SQLAlchemy raises a driver's error."""
    return OperationalError("SELECT 1", {}, error)


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
    ],
)
def test_a_bug_or_a_wrong_schema_is_not_an_outage(error: Exception) -> None:
    assert not is_unavailable(error)
