"""Which errors mean the database is unavailable for now, rather than that a statement or the code is wrong.

An outage clears by itself: the database is locked by another process, down or restarting, out of disk, or
the connection to it was reset or timed out. Callers retry those (the supervisor) or answer 503 (the API);
anything else is a bug or a wrong schema and is reported as such. The decision reads exception types, and
for SQLite, whose driver raises one `OperationalError` for everything, the SQLite error text.

Each driver's errors are in this one module, so nothing else needs to know which database it talks to.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Iterator

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from chargewire.errors import DatabaseUnavailable

logger = logging.getLogger(__name__)

# SQLite's texts for an outage: another process holds the lock, the disk failed or filled, the file is gone.
_SQLITE_OUTAGE_TEXTS = ("locked", "busy", "disk i/o", "full", "unable to open")
_ASYNCPG_OUTAGES = (
    asyncpg.PostgresConnectionError,  # refused, lost, rejected
    asyncpg.InterfaceError,  # the connection is closed or in use by a cancelled operation
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.OperatorInterventionError,  # admin or crash shutdown, query cancelled
    asyncpg.InsufficientResourcesError,  # disk full, out of memory, too many connections
)
# asyncpg's own protocol-state errors (InternalClientError, else a bug of the driver's) that mean the server closed
# the connection before the client read its end: the server's FATAL goodbye (a restart's "terminating connection
# due to administrator command") came while idle, so the next statement finds the protocol still discarding
# input (state 2, ERROR_CONSUME) and fails before the end of the stream marks the connection closed.
_ASYNCPG_LOST_CONNECTION = re.compile(
    r"another operation \((?:2|[\w.]*PROTOCOL_ERROR_CONSUME)\) is in progress"
    r'|protocol is in the "failed" state|^not connected$'
)


def is_unavailable(error: BaseException) -> bool:
    """Whether `error` (or an error it was raised from) means the database is unavailable for now."""
    return any(_is_outage(cause) for cause in _causes(error))


def _is_outage(error: BaseException) -> bool:
    if isinstance(error, DatabaseUnavailable | PoolTimeout | TimeoutError | ConnectionError):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, sqlite3.OperationalError):
        text = str(error).lower()
        return any(outage in text for outage in _SQLITE_OUTAGE_TEXTS)
    if isinstance(error, _ASYNCPG_OUTAGES):
        return True
    # The exact type: its subclasses (a stale schema cache, a wrong target server) are not about the connection.
    if type(error) is asyncpg.InternalClientError:
        return _ASYNCPG_LOST_CONNECTION.search(str(error)) is not None
    # A socket or file error of the driver itself (no space left, connection reset, host unreachable).
    return isinstance(error, OSError) and not isinstance(error, FileNotFoundError | PermissionError)


def _causes(error: BaseException) -> Iterator[BaseException]:
    """`error` and what it was raised from (SQLAlchemy's `orig`, `raise ... from`), without loops."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        original = getattr(current, "orig", None)
        pending.extend([original if isinstance(original, BaseException) else None, current.__cause__])


class OutageNotice:
    """Logs that the database is unavailable at most once every `every_s`, with how often it was met since.

    For callers that meet an outage many times a second (every API request) and retry nothing themselves.
    """

    def __init__(self, where: str, every_s: float = 30.0) -> None:
        self._where = where
        self._every_s = every_s
        self._next_log = 0.0
        self._met = 0

    def met(self, error: BaseException) -> None:
        """Note one more error of an outage; logs it if none was logged lately."""
        self._met += 1
        now = time.monotonic()
        if now >= self._next_log:
            logger.warning(
                "%s: the database is unavailable (%d times since the last notice): %s", self._where, self._met, error
            )
            self._next_log, self._met = now + self._every_s, 0
