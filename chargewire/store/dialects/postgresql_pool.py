"""Marked dialect difference: a pooled PostgreSQL connection is checked on checkout only after it sat idle.

SQLAlchemy's `pool_pre_ping` checks every checkout, and on asyncpg a check is a transaction of its own (BEGIN,
an empty query, ROLLBACK): three round trips before every transaction. At 50 events/s with `serve --no-worker`
and one worker that was 3.2 checks per event, ten of the ~28 round trips an event cost the two processes and
PostgreSQL.

A connection handed back to the pool moments ago worked then. One the server closed since (a restart or
`pg_terminate_backend` ends each session with a message and a FIN, which asyncpg reads as they come) is known to
be closed without asking. So a checkout replaces a closed connection, pings one that sat idle longer than
`IDLE_CHECK_S` as `pool_pre_ping` did, and uses any other as it is. Either failure invalidates the whole pool,
as a failed pre-ping does: a dead connection most likely means a restarted server. A connection that breaks
unseen within the window fails its first statement as a disconnect, which invalidates the pool too, and the
caller retries as after a connection lost in mid-transaction (`store.outage`).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import AsyncEngine

# How long a connection may sit in the pool and still be used unchecked.
IDLE_CHECK_S = 1.0
_RETURNED_AT = "chargewire_returned_at"


def check_idle_connections(engine: AsyncEngine, idle_check_s: float = IDLE_CHECK_S) -> None:
    """Check `engine`'s pooled connections on checkout when closed or idle past `idle_check_s` (see the module)."""
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    def returned(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info[_RETURNED_AT] = time.monotonic()

    def checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.get(_RETURNED_AT)
        if returned_at is None:
            return  # just connected
        if dbapi_connection.driver_connection.is_closed():
            raise exc.InvalidatePoolError("the server closed the pooled connection")
        if time.monotonic() - returned_at > idle_check_s:
            try:
                dialect.do_ping(dbapi_connection)
            except Exception as error:
                raise exc.InvalidatePoolError(f"a pooled connection failed its check: {error}") from error

    event.listen(pool, "checkin", returned)
    event.listen(pool, "checkout", checked_out)
