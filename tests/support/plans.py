"""The plans the databases choose for the statements the store sends: for tests that guard which index a query
uses, so that an edit that brings back a walk over the whole backlog fails."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

from chargewire.store.database import Database
from chargewire.store.dialects.postgresql_driver import KeptConnection


@contextlib.contextmanager
def sent_statements(database: Database, prefix: str | tuple[str, ...]) -> Iterator[list[tuple[str, Any]]]:
    """The statements (text, parameters) starting with `prefix` (or one of them) that `database` sends in the block."""
    sent: list[tuple[str, Any]] = []

    def keep(_connection: object, _cursor: object, statement: str, parameters: Any, *_rest: object) -> None:
        if statement.lstrip().startswith(prefix):
            sent.append((statement, parameters))

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", keep)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", keep)


async def plan_of(connection: AsyncConnection, statement: str, parameters: Any) -> str:
    """The plan of a sent statement, one node a line: SQLite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN."""
    if connection.dialect.name == "sqlite":
        rows = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        return "\n".join(str(row[-1]) for row in rows)
    rows = await connection.exec_driver_sql(f"EXPLAIN (COSTS OFF) {statement}", parameters)
    return "\n".join(str(row[0]) for row in rows)


@contextlib.contextmanager
def driver_queries(database: Database) -> Iterator[list[str]]:
    """The queries asyncpg logs on the connections checked out in the block, or used there after a writer kept them
    out of the pool (`KeptConnection`): BEGIN, COMMIT, ROLLBACK, statements sent straight on asyncpg; not
    SQLAlchemy's prepared statements. Empty on SQLite."""
    queries: list[str] = []
    drivers: list[Any] = []

    def log(record: Any) -> None:
        queries.append(record.query)

    def logged(driver: Any) -> None:
        if hasattr(driver, "add_query_logger") and driver not in drivers:
            driver.add_query_logger(log)
            drivers.append(driver)

    def checked_out(dbapi_connection: Any, _record: object, _proxy: object) -> None:
        logged(dbapi_connection.driver_connection)

    kept_driver = KeptConnection.driver

    @contextlib.asynccontextmanager
    async def logged_kept(kept: KeptConnection, statement: str) -> AsyncIterator[Any]:
        async with kept_driver(kept, statement) as driver:
            logged(driver)
            yield driver

    pool = database.engine.sync_engine.pool
    event.listen(pool, "checkout", checked_out)
    KeptConnection.driver = logged_kept  # type: ignore[method-assign,assignment]
    try:
        yield queries
    finally:
        KeptConnection.driver = kept_driver  # type: ignore[method-assign]
        event.remove(pool, "checkout", checked_out)
        for driver in drivers:
            driver.remove_query_logger(log)


@contextlib.contextmanager
def round_trips(database: Database) -> Iterator[list[str]]:
    """The statements `database` sends in the block, each a round trip to PostgreSQL: those through SQLAlchemy's
    cursor, and those straight on asyncpg (BEGIN, COMMIT, a publish's one statement). asyncpg logs a query at the
    event loop's next turn: let one pass before the block ends. On SQLite, the cursor's only."""
    trips: list[str] = []
    with sent_statements(database, "") as through_cursor, driver_queries(database) as straight:
        yield trips
    trips.extend([*(text for text, _values in through_cursor), *straight])
