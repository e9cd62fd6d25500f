"""The plans the databases choose for the statements the store sends: for tests that guard which index a query
uses, so that an edit that brings back a walk over the whole backlog fails."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any, NamedTuple

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

from chargewire.store.database import Database
from chargewire.store.dialects import sqlite_engine
from chargewire.store.dialects.postgresql_driver import KeptConnection


@contextlib.contextmanager
def sent_statements(
    database: Database, prefix: str | tuple[str, ...], *, steps: bool = True
) -> Iterator[list[tuple[str, Any]]]:
    """The statements (text, parameters) starting with `prefix` (or one of them) that `database` sends in the block:
    through SQLAlchemy's cursor, and on SQLite (unless `steps` is false) those sent straight on the driver as steps of
    a one-trip transaction (`driver_steps`: a publish's, a record's, a claim's)."""
    sent: list[tuple[str, Any]] = []

    def keep(_connection: object, _cursor: object, statement: str, parameters: Any, *_rest: object) -> None:
        if statement.lstrip().startswith(prefix):
            sent.append((statement, parameters))

    engine = database.engine.sync_engine
    event.listen(engine, "before_cursor_execute", keep)
    try:
        stepping = driver_steps(database) if steps else contextlib.nullcontext(list[DriverStep]())
        with stepping as stepped:
            yield sent
        sent.extend((step.sql, step.parameters) for step in stepped if step.sql.lstrip().startswith(prefix))
    finally:
        event.remove(engine, "before_cursor_execute", keep)


class DriverStep(NamedTuple):
    """A statement SQLite ran as a step of a one-trip transaction, and whether the event loop's thread ran it."""

    sql: str
    parameters: Any
    in_event_loop: bool


@contextlib.contextmanager
def driver_steps(database: Database) -> Iterator[list[DriverStep]]:
    """The statements SQLite runs in the block as steps of a one-trip transaction, past SQLAlchemy's cursor
    (`sqlite_engine.commit_statements` and `commit_after_reads`), in whichever thread; empty on PostgreSQL."""
    stepped: list[DriverStep] = []
    if database.dialect.name != "sqlite":
        yield stepped
        return
    run_step = sqlite_engine._run_step
    loop_thread = threading.get_ident()

    def kept(cursor: sqlite3.Cursor, step: sqlite_engine.Step) -> list[Any]:
        stepped.append(DriverStep(step[0], step[1], threading.get_ident() == loop_thread))
        return run_step(cursor, step)

    sqlite_engine._run_step = kept
    try:
        yield stepped
    finally:
        sqlite_engine._run_step = run_step


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
    with sent_statements(database, "", steps=False) as through_cursor, driver_queries(database) as straight:
        yield trips
    trips.extend([*(text for text, _values in through_cursor), *straight])
