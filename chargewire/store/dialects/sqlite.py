"""SQLite's side of every dialect difference: datetimes kept as ISO text, one writer at a time."""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from itertools import chain
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from sqlalchemy import ColumnElement, Dialect, Insert, Select, String, Table, bindparam, func, insert, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.expression import UpdateBase

from chargewire.store.dialects.base import (
    MINUTE_FORMAT,
    Read,
    Reader,
    ReadRows,
    SelectT,
    StoreDialect,
    WakeHooks,
    WritesFrom,
    WriteTransactions,
)
from chargewire.store.dialects.compiled_insert import insert_sql
from chargewire.store.dialects.conflicts import ConflictUpdate, on_conflict
from chargewire.store.dialects.engine import OpenedEngine
from chargewire.store.dialects.sqlite_engine import (
    OneTripConnection,
    commit_after_reads,
    commit_statements,
    open_sqlite_engine,
)
from chargewire.store.dialects.sqlite_one_trip import (
    DriverStatement,
    commit_in_one_trip,
    commit_returning_in_one_trip,
    driver_statement,
)
from chargewire.store.dialects.sqlite_upkeep import SqliteUpkeep
from chargewire.store.dialects.sqlite_wake_signal import SignalSender
from chargewire.store.dialects.sqlite_wakeups import CommitWatcher
from chargewire.store.dialects.sqlite_writer import SerialWriter
from chargewire.store.dialects.writes import ColumnInsert, GuardedWrites, Statement, Write
from chargewire.store.tables import naive_utc

if TYPE_CHECKING:
    from chargewire.store.database import Database

T = TypeVar("T")
_SECONDS_PER_DAY = 86400.0
# Each engine's writer by the engine's id, so that a transaction straight on the driver (`write_after_reads`)
# waits its turn too. Held weakly: its database keeps it (a writer refers to its engine, so keying by the engine
# itself would keep every engine alive); an engine made later at the same id registers its own first.
_serial_writers: weakref.WeakValueDictionary[int, SerialWriter] = weakref.WeakValueDictionary()
# SQLite's default SQLITE_MAX_VARIABLE_NUMBER: 32,766 since 3.32, 999 before.
_MAX_VARIABLES = 32_766 if sqlite3.sqlite_version_info >= (3, 32) else 999
# Row counts below this are written in one INSERT of exactly that many rows (`_chunks`).
_EXACT_ROWS = 64


class SQLiteDialect:
    """The store's SQLite dialect."""

    name = "sqlite"
    updates_in_with = False

    def open_engine(self, url: URL, echo: bool) -> OpenedEngine:
        """SQLite through aiosqlite, in WAL mode, one trip per statement (`sqlite_engine`)."""
        if url.drivername == "sqlite":
            url = url.set(drivername="sqlite+aiosqlite")
        return open_sqlite_engine(url.render_as_string(hide_password=False), url.database, echo)

    def write_transactions(self, engine: AsyncEngine) -> WriteTransactions:
        """One writer at a time, each holding SQLite's write lock from its BEGIN (`SerialWriter`)."""
        writer = _serial_writers[id(engine.sync_engine)] = SerialWriter(engine)
        return writer.transaction

    def minute_text(self, moment: ColumnElement[Any]) -> ColumnElement[str]:
        """`moment`'s minute as 'YYYY-MM-DD HH:MM' text (SQLite keeps datetimes as ISO text)."""
        return func.strftime(MINUTE_FORMAT, moment)

    def seconds_between(self, later: ColumnElement[Any], earlier: ColumnElement[Any]) -> ColumnElement[Any]:
        """Seconds from `earlier` to `later`, through Julian day numbers."""
        return (func.julianday(later) - func.julianday(earlier)) * _SECONDS_PER_DAY

    def one_of(self, column: ColumnElement[str], ids: Collection[str] | None) -> ColumnElement[bool]:
        """`column IN ids`, the ids bound as one JSON array that `json_each` reads."""
        value = None if ids is None else self.ids_value(ids)
        listed = func.json_each(bindparam("ids", value, type_=String)).table_valued("value")
        return column.in_(select(listed.c.value))

    def ids_value(self, ids: Collection[str]) -> str:
        """`ids` as JSON array text."""
        return orjson.dumps(list(ids)).decode()

    @contextlib.asynccontextmanager
    async def claim_transaction(self, database: Database) -> AsyncIterator[Reader]:
        """Straight on the writers' driver connection, the writer's turn taken: each statement one step, run in the
        event loop's thread when the write lock is free (or held) and the driver's thread idle, the commit too.

        Through SQLAlchemy a claim was four trips to the driver's thread (scan, lease, payloads, commit), each with
        a greenlet and a wake-up of the loop: with `serve --no-worker` and a `worker`, the worker's largest cost
        per event at 50 and 200 events/s. SQLite needs no plan choices made (PostgreSQL's generic plans).
        """
        dialect = database.engine.dialect
        async with _driver_transaction(database) as driver:

            async def read(statement: Read) -> list[tuple[Any, ...]]:
                step = driver_statement(statement.statement, dialect, statement.parameters, typed_rows=True)
                return await _read_in(driver, step, here=statement.bounded)

            yield read
            if driver.in_transaction:
                await _translated(commit_statements(driver, []), [])

    async def lone_read(self, connection: AsyncConnection) -> None:
        """Nothing: the read's BEGIN already goes in the statement's one trip to the driver's thread."""

    def skip_locked(self, query: SelectT, of: Table) -> SelectT:
        """`query` unchanged: SQLite has one writer at a time, so a claim needs no row locks."""
        return query

    async def unlocked(self, read: Reader, query: Select[str], values: Mapping[str, Any], of: Table) -> None:
        """None: no other writer runs while this one holds the write lock."""

    async def insert_rows(
        self, connection: AsyncConnection, table: Table, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
    ) -> None:
        """Insert `rows` by multi-row VALUES statements (`_multi_row_inserts`)."""
        for sql, values in _multi_row_inserts(table, columns, rows, connection.dialect):
            await connection.exec_driver_sql(sql, values)

    async def insert_columns(
        self, connection: AsyncConnection, table: Table, columns: tuple[str, ...], values: tuple[Sequence[Any], ...]
    ) -> None:
        """Insert rows held one sequence per column, as `insert_rows` does."""
        await self.insert_rows(connection, table, columns, list(zip(*values, strict=True)))

    async def write_guarded(self, connection: AsyncConnection, writes: GuardedWrites) -> bool:
        """Run the guard and the writes and commit, all in one trip to the driver's thread (`sqlite_one_trip`),
        so the write lock is held for the writing alone. No row locks: the one writer holds the whole file."""
        dialect = connection.dialect
        guard = driver_statement(writes.guard.statement, dialect, writes.guard.parameters, must_change_rows=True)
        statements = [guard, *(step for write in writes.writes for step in _driver_statements(write, dialect))]
        return await commit_in_one_trip(connection, statements)

    async def write_last(self, connection: AsyncConnection, writes: Sequence[Write]) -> None:
        """Run the writes and commit in one trip to the driver's thread (`sqlite_one_trip`): a publish's inserts
        and its COMMIT were three trips, each costing the event loop more CPU than the statement itself."""
        await _commit_returning(connection, _all_driver_statements(writes, connection.dialect))

    async def write_last_after_reads(
        self, connection: AsyncConnection, reads: Sequence[Read], guess: ReadRows | None, writes_from: WritesFrom
    ) -> ReadRows:
        """One trip when the reads return `guess`: reads, writes made from the guess, and the commit (their
        write lock held for that trip alone); else a second trip with the writes made from the rows read."""
        raw = await connection.get_raw_connection()
        return await _write_after_reads(raw.driver_connection, connection.dialect, reads, guess, writes_from)

    async def write_after_reads(
        self, database: Database, reads: Sequence[Read], guess: ReadRows | None, writes_from: WritesFrom
    ) -> ReadRows:
        """`write_last_after_reads` straight on a pooled driver connection, the writer's turn taken."""
        async with _driver_transaction(database) as driver:
            return await _write_after_reads(driver, database.engine.dialect, reads, guess, writes_from)

    async def commit_writes(self, database: Database, writes: Sequence[Write]) -> None:
        """The writes and their commit in one trip, straight on the writers' driver connection, the writer's turn
        taken: SQLAlchemy's begin and commit (greenlets, events) cost a lone record flush more CPU than its
        statements (one record in process, back to back: 347-385 us of CPU through them, 190-261 past them)."""
        statements = _all_driver_statements(writes, database.engine.dialect)
        async with _driver_transaction(database) as driver:
            await _translated(commit_statements(driver, [statement.step() for statement in statements]), statements)

    async def write_returning(
        self, connection: AsyncConnection, statements: Sequence[Statement]
    ) -> list[list[tuple[Any, ...]]]:
        """Run the statements and commit in one trip to the driver's thread, the rows they return with them."""
        dialect = connection.dialect
        steps = [driver_statement(write.statement, dialect, write.parameters) for write in statements]
        return [[tuple(row) for row in rows] for rows in await _commit_returning(connection, steps)]

    def time_value(self) -> Callable[[datetime | None], str | None]:
        """ISO text of the naive UTC time, as SQLAlchemy's SQLite DATETIME stores it (`_utc_text`)."""
        return _utc_text

    def insert_on_conflict(self, table: Table, keys: Sequence[str], update: ConflictUpdate | None = None) -> Insert:
        """SQLite's INSERT ... ON CONFLICT (3.24+; RETURNING after it, 3.35+)."""
        return on_conflict(sqlite_insert(table), keys, update)

    async def continue_ids(self, connection: AsyncConnection, table: Table) -> None:
        """Nothing: SQLite's AUTOINCREMENT counter follows the largest id inserted, given or generated."""

    def guessed_publisher(self, database: Database) -> None:
        """None: `write_after_reads` takes a publish's guess, in one trip to the driver's thread."""

    def wake_notifier(self, database: Database) -> SignalSender | None:
        """A datagram to the other processes' commit watchers after commits (`sqlite_wake_signal`); SQLite has no
        NOTIFY. None for a database in memory, which no other process can open."""
        return None if database.sqlite_file is None else SignalSender(database.sqlite_file)

    def wake_listener(self, database: Database, hooks: WakeHooks) -> CommitWatcher | None:
        """A watch on the file's commits (`sqlite_wakeups`); None in memory, where no other process can write."""
        if database.sqlite_file is None:
            return None
        return CommitWatcher(database.sqlite_file, database.engine.dialect, hooks)

    def upkeep(self, database: Database) -> SqliteUpkeep:
        """Sizes from dbstat, and the file shrunk by incremental vacuum (`sqlite_upkeep`)."""
        return SqliteUpkeep(database.sqlite_file)


def _utc_text(value: datetime | None) -> str | None:
    """`value` as `UtcDateTime` stores it on SQLite ('YYYY-MM-DD HH:MM:SS.ffffff', UTC): the same text as its
    processors make (`tests/unit/store/test_dialects.py`), in an eighth of their time, which was the
    largest single call of a publish's write (~20 us of ~150 in the event loop's thread)."""
    return None if value is None else naive_utc(value).isoformat(" ", "microseconds")


async def _write_after_reads(
    driver: Any, dialect: Dialect, reads: Sequence[Read], guess: ReadRows | None, writes_from: WritesFrom
) -> ReadRows:
    """`SQLiteDialect.write_last_after_reads` on the driver connection of a transaction begun."""
    steps = [_read_statement(read.statement, dialect, tuple(read.parameters.items())) for read in reads]

    async def read_more(read: Read) -> list[tuple[Any, ...]]:
        return await _read_in(driver, _read_statement(read.statement, dialect, tuple(read.parameters.items())))

    writes = _all_driver_statements(await writes_from(guess, read_more), dialect) if guess is not None else []
    trip = commit_after_reads(driver, [step.step() for step in steps], guess, [write.step() for write in writes])
    rows, committed = await _translated(trip, [*steps, *writes])
    if not committed:
        writes = _all_driver_statements(await writes_from(rows, read_more), dialect)
        await _translated(commit_statements(driver, [write.step() for write in writes]), writes)
    return rows


async def _read_in(driver: OneTripConnection, read: DriverStatement, *, here: bool = True) -> list[tuple[Any, ...]]:
    """The rows of one more read in the transaction on `driver` (begun with it, if it is the first); its one step
    runs in the event loop's thread when it need not wait there, and may (`here`; `commit_after_reads`)."""
    rows, _committed = await _translated(commit_after_reads(driver, [read.step()], None, [], here=here), [read])
    return rows[0]


# A read's parameters are a count or a list of names (`Read`): a publish of the names it published before binds the
# same values, and converting them again cost it more than running the read.
@functools.lru_cache(maxsize=256)
def _read_statement(
    statement: Select[*tuple[Any, ...]] | UpdateBase, dialect: Dialect, parameters: tuple[tuple[str, Any], ...]
) -> DriverStatement:
    """`driver_statement` of a read, its rows typed, kept for the values it binds."""
    return driver_statement(statement, dialect, dict(parameters), typed_rows=True)


def _driver_transaction(database: Database) -> AbstractAsyncContextManager[OneTripConnection]:
    """A write transaction straight on `database`'s writers' driver connection, the writer's turn taken."""
    return _serial_writers[id(database.engine.sync_engine)].driver_transaction()


async def _commit_returning(connection: AsyncConnection, statements: Sequence[DriverStatement]) -> list[list[Any]]:
    """`commit_returning_in_one_trip`, a refused statement raised as SQLAlchemy's cursor raises it."""
    return await _translated(commit_returning_in_one_trip(connection, statements), statements) or []


async def _translated(trip: Awaitable[T], statements: Sequence[DriverStatement]) -> T:
    """What `trip` returns; a refused statement raised as SQLAlchemy's cursor raises it (so a refused row is an
    IntegrityError on both databases)."""
    try:
        return await trip
    except sqlite3.Error as error:
        sql = "; ".join(statement.sql.split(" VALUES ", 1)[0] for statement in statements)
        raise DBAPIError.instance(sql, None, error, sqlite3.Error) from error


def _all_driver_statements(writes: Sequence[Write], dialect: Dialect) -> list[DriverStatement]:
    return [step for write in writes for step in _driver_statements(write, dialect)]


def _driver_statements(write: Write, dialect: Dialect) -> list[DriverStatement]:
    """`write` as the statements one trip runs."""
    if isinstance(write, Statement):
        return [driver_statement(write.statement, dialect, write.parameters)]
    rows = list(zip(*write.values, strict=True)) if isinstance(write, ColumnInsert) else write.rows
    return [
        DriverStatement(sql, values) for sql, values in _multi_row_inserts(write.table, write.columns, rows, dialect)
    ]


def _multi_row_inserts(
    table: Table, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]], dialect: Dialect
) -> list[tuple[str, tuple[Any, ...]]]:
    """The multi-row INSERTs that write `rows` into SQLite: (SQL, its values in one flat tuple) each."""
    if len(rows) == 1:
        # A single event's publish: its row's tuple is the statement's values as they are.
        return [(_multi_row_sql(table, columns, dialect, 1), tuple(rows[0]))]
    return [
        (_multi_row_sql(table, columns, dialect, count), tuple(chain.from_iterable(rows[start : start + count])))
        for start, count in _chunks(len(rows), len(columns))
    ]


def _single_row_insert(table: Table, _columns: tuple[str, ...]) -> Insert:
    return insert(table)


def _chunks(count: int, width: int) -> Iterator[tuple[int, int]]:
    """(start, rows) of the multi-row INSERTs that write `count` rows of `width` values into SQLite.

    Why not executemany: it releases the GIL around every row's step and must take it back after each, and
    while another thread runs Python each take can wait up to the interpreter's switch interval (5 ms). With a
    second thread busy, 2,000 delivery rows took seconds that way, and tens of milliseconds as a few statements.
    Fewer than `_EXACT_ROWS` rows go in one statement of exactly that many rows: a group commit at 2,000 events/s
    (29 events at the median) made four statements per table as powers of two, each a GIL release and retake.
    Larger counts go as powers of two first, so that a table has about 70 distinct statements at most in the
    driver's statement cache (`sqlite_engine`), each within SQLite's limit on bound values.
    """
    largest = 1 << ((_MAX_VARIABLES // width).bit_length() - 1)
    exact = min(_EXACT_ROWS, largest)
    start = 0
    while count - start >= exact:
        rows = min(largest, 1 << ((count - start).bit_length() - 1))
        yield start, rows
        start += rows
    if start < count:
        yield start, count - start


# About 70 row counts per table and columns (`_chunks`): built once each, not on every insert.
@functools.lru_cache(maxsize=1024)
def _multi_row_sql(table: Table, columns: tuple[str, ...], dialect: Dialect, rows: int) -> str:
    """The INSERT of `rows` rows of `columns` into `table`: its VALUES tuple repeated."""
    head, values = insert_sql(table, columns, dialect, _single_row_insert).rsplit(" VALUES ", 1)
    return f"{head} VALUES {', '.join([values] * rows)}"


SQLITE: StoreDialect = SQLiteDialect()
