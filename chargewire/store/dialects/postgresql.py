"""PostgreSQL's side of every dialect difference: several workers, row locks, native time types."""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections.abc import AsyncIterator, Collection, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy import ARRAY, ColumnElement, Insert, Select, String, Table, any_, bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from chargewire.store.dialects.base import (
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
from chargewire.store.dialects.engine import DATABASE_WAIT_S, JSON_CODEC, OpenedEngine
from chargewire.store.dialects.postgresql_driver import COPY_FROM_ROWS, translated, unnested
from chargewire.store.dialects.postgresql_pool import check_idle_connections
from chargewire.store.dialects.postgresql_publish import OneStatementPublisher
from chargewire.store.dialects.postgresql_replans import PlanAge
from chargewire.store.dialects.postgresql_upkeep import PostgresUpkeep
from chargewire.store.dialects.postgresql_wakeups import WakeListener, WakeNotifier
from chargewire.store.dialects.writes import ColumnInsert, GuardedWrites, RowInsert, Statement, Write

if TYPE_CHECKING:
    from chargewire.store.database import Database

# A statement that has not answered in this long is abandoned (the server hangs, or the network dropped
# without a reset); generous, as a claim over a large backlog may take seconds.
_COMMAND_TIMEOUT_S = 30.0
# Waiting for a connection of the pool (all in use).
_POOL_TIMEOUT_S = 10.0


class PostgreSQLDialect:
    """The store's PostgreSQL dialect."""

    name = "postgresql"
    updates_in_with = True

    def open_engine(self, url: URL, echo: bool) -> OpenedEngine:
        """PostgreSQL through asyncpg, every wait on the server bounded."""
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+asyncpg")
        engine = create_async_engine(
            url,
            echo=echo,
            pool_size=10,
            max_overflow=10,
            pool_timeout=_POOL_TIMEOUT_S,
            connect_args={"timeout": DATABASE_WAIT_S, "command_timeout": _COMMAND_TIMEOUT_S},
            **JSON_CODEC,
        )
        # Instead of pool_pre_ping, which costs every transaction three round trips.
        check_idle_connections(engine)
        return OpenedEngine(engine)

    def write_transactions(self, engine: AsyncEngine) -> WriteTransactions:
        """`engine.begin`: writers run side by side, and row locks keep them apart."""
        return engine.begin

    def minute_text(self, moment: ColumnElement[Any]) -> ColumnElement[str]:
        """`moment`'s minute as 'YYYY-MM-DD HH:MM' text."""
        return func.to_char(func.date_trunc("minute", moment), "YYYY-MM-DD HH24:MI")

    def seconds_between(self, later: ColumnElement[Any], earlier: ColumnElement[Any]) -> ColumnElement[Any]:
        """Seconds from `earlier` to `later`: the interval's epoch."""
        return func.extract("epoch", later - earlier)

    def one_of(self, column: ColumnElement[str], ids: Collection[str] | None) -> ColumnElement[bool]:
        """`column = ANY(ids)`, the ids bound as one array."""
        value = None if ids is None else self.ids_value(ids)
        return column == any_(bindparam("ids", value, type_=ARRAY(String)))

    def ids_value(self, ids: Collection[str]) -> list[str]:
        """`ids` as a list, which asyncpg binds as an array."""
        return list(ids)

    @contextlib.asynccontextmanager
    async def claim_transaction(self, database: Database) -> AsyncIterator[Reader]:
        """A transaction with `SET LOCAL plan_cache_mode = force_generic_plan`, its statements read as tuples.

        The due scan's first five runs on each connection are planned for the bound time (custom plans). Right
        after a burst of inserts the partitions' statistics are stale, and that plan reads every due row of the
        partition by bitmap scan and sorts them on disk (30-40 ms with 30,000 due), where the generic plan walks
        the due index of each partition in order (a Merge Append) and stops at the limit (~4 ms).

        A generic plan is kept until an ANALYZE of its tables, which autovacuum makes a minute or more after a
        partition fills: the lease made on a nearly empty partition scanned it whole (38 ms past 30,750
        deliveries, 8.5 ms on average over a bench run). So a connection's plans are discarded each time the time
        since its first claim doubles (`PlanAge`), and made again from the tables as they are.
        """
        async with database.transaction() as connection:
            await connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
            if await _plans_aged(connection):
                await connection.exec_driver_sql("DISCARD PLANS")
            yield _reader(connection)

    async def lone_read(self, connection: AsyncConnection) -> None:
        """Autocommit for this checkout only: one statement is its own snapshot, so the BEGIN and ROLLBACK
        round it were two of its three round trips. asyncpg's adapter sets and resets the mode without a trip (the
        reset names the default level, which later BEGINs on the connection then state: still one trip)."""
        await connection.execution_options(isolation_level="AUTOCOMMIT")

    def skip_locked(self, query: SelectT, of: Table) -> SelectT:
        """`query ... FOR UPDATE OF of SKIP LOCKED`: workers pass over the rows another worker is claiming."""
        return query.with_for_update(skip_locked=True, of=of)

    async def unlocked(self, read: Reader, query: Select[str], values: Mapping[str, Any], of: Table) -> set[str]:
        """What `query` reads of rows of `of` no other worker has locked (SKIP LOCKED), locking them."""
        return {row[0] for row in await read(Read(self.skip_locked(query, of), values))}

    async def insert_rows(
        self, connection: AsyncConnection, table: Table, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
    ) -> None:
        """Insert `rows` as one array per column, unnested by a single INSERT: an executemany costs the server
        a bind and execute per row."""
        arrays = tuple(list(values) for values in zip(*rows, strict=True))
        await connection.exec_driver_sql(insert_sql(table, columns, connection.dialect, _unnested_insert), arrays)

    async def insert_columns(
        self, connection: AsyncConnection, table: Table, columns: tuple[str, ...], values: tuple[Sequence[Any], ...]
    ) -> None:
        """Insert rows held one sequence per column by binary COPY.

        asyncpg checks every element of an array parameter against abstract base classes, which made
        `insert_rows`' arrays cost the API 3-4 µs of CPU per ingested event; COPY encodes each value as it
        comes, and its server spends less per row too. COPY goes around SQLAlchemy's cursor, so its errors are
        translated here as that cursor would: a broken constraint as IntegrityError, anything else as
        DBAPIError. It runs in the transaction the statements before it began.
        """
        driver = await _driver_in_transaction(connection, f"COPY {table.name}")
        with translated(f"COPY {table.name}"):
            await driver.copy_records_to_table(table.name, records=zip(*values, strict=True), columns=columns)

    async def write_guarded(self, connection: AsyncConnection, writes: GuardedWrites) -> bool:
        """Lock, run the guard, then each write, statement by statement."""
        for lock in writes.locks:
            await connection.execute(lock)
        if not (await connection.execute(writes.guard.statement, writes.guard.parameters)).rowcount:
            return False
        await self.write_last(connection, writes.writes)
        return True

    async def write_last(self, connection: AsyncConnection, writes: Sequence[Write]) -> None:
        """Run each write, statement by statement; the transaction commits when its block ends. Statements in a
        row that are one statement with values of their own each go as one executemany, which asyncpg sends in
        one round trip."""
        for write in _runs_together(writes):
            if isinstance(write, list):
                await connection.execute(write[0].statement, [statement.parameters for statement in write])
            elif isinstance(write, Statement):
                await connection.execute(write.statement, write.parameters)
            elif isinstance(write, ColumnInsert):
                if write.values and write.values[0]:
                    await self.insert_columns(connection, write.table, write.columns, write.values)
            elif isinstance(write, RowInsert) and write.rows:
                await self.insert_rows(connection, write.table, write.columns, list(write.rows))

    async def write_last_after_reads(
        self, connection: AsyncConnection, reads: Sequence[Read], guess: ReadRows | None, writes_from: WritesFrom
    ) -> ReadRows:
        """Run each read, then the writes made from their rows (a few rows by one INSERT each, not COPY); no guess
        is taken here, as other writers run beside: a publish's is checked in one statement (`guessed_publisher`)."""

        read = _reader(connection)
        rows = [await read(statement) for statement in reads]
        for write in await writes_from(rows, read):
            if isinstance(write, ColumnInsert) and 0 < len(write.values[0]) < COPY_FROM_ROWS:
                await _insert_few(connection, write)
            else:
                await self.write_last(connection, [write])
        return rows

    async def write_after_reads(
        self, database: Database, reads: Sequence[Read], guess: ReadRows | None, writes_from: WritesFrom
    ) -> ReadRows:
        """`write_last_after_reads` in a transaction of its own."""
        async with database.transaction() as connection:
            return await self.write_last_after_reads(connection, reads, guess, writes_from)

    async def commit_writes(self, database: Database, writes: Sequence[Write]) -> None:
        """`write_last` in a transaction of its own."""
        async with database.transaction() as connection:
            await self.write_last(connection, writes)

    async def write_returning(
        self, connection: AsyncConnection, statements: Sequence[Statement]
    ) -> list[list[tuple[Any, ...]]]:
        """Run each statement, keeping what it returns; the transaction commits when its block ends."""
        returned = []
        for write in statements:
            result = await connection.execute(write.statement, write.parameters)
            returned.append([tuple(row) for row in result.all()] if result.returns_rows else [])
        return returned

    def insert_on_conflict(self, table: Table, keys: Sequence[str], update: ConflictUpdate | None = None) -> Insert:
        """PostgreSQL's INSERT ... ON CONFLICT: a conflicting insert waits for the other's commit, then updates or
        does nothing."""
        return on_conflict(postgresql_insert(table), keys, update)

    async def continue_ids(self, connection: AsyncConnection, table: Table) -> None:
        """Move the id column's sequence past the largest id: rows inserted with given ids did not advance it."""
        largest = select(func.max(table.c.id)).scalar_subquery()
        await connection.execute(select(func.setval(func.pg_get_serial_sequence(table.name, "id"), largest)))

    def time_value(self) -> None:
        """None: asyncpg takes the naive UTC datetime `UtcDateTime`'s processor makes."""

    def guessed_publisher(self, database: Database) -> OneStatementPublisher:
        """A publish made from guessed subscribers as one statement that checks them (`postgresql_publish`)."""
        return OneStatementPublisher(database)

    def wake_notifier(self, database: Database) -> WakeNotifier:
        """A NOTIFY on the wake-up channel after commits, coalesced (`postgresql_wakeups`)."""
        return WakeNotifier(database.engine)

    def wake_listener(self, database: Database, hooks: WakeHooks) -> WakeListener:
        """A LISTEN on the wake-up channel; told when (and often what), it needs no look at the work."""
        return WakeListener(database.engine, hooks.wake, hooks.announced, assigned=hooks.assigned)

    def upkeep(self, database: Database) -> PostgresUpkeep:
        """Sizes from the catalog, and history tables in day partitions dropped whole (`postgresql_upkeep`)."""
        return PostgresUpkeep(database)


def _runs_together(writes: Sequence[Write]) -> Iterator[Write | list[Statement]]:
    """`writes` in order, each run of two or more Statements of one statement object (the same values bound)
    as a list of them, for one executemany."""
    run: list[Statement] = []
    for write in writes:
        if run and not _same_statement(run[0], write):
            yield run if len(run) > 1 else run[0]
            run = []
        if isinstance(write, Statement):
            run.append(write)
        else:
            yield write
    if run:
        yield run if len(run) > 1 else run[0]


def _same_statement(first: Statement, write: Write) -> bool:
    return (
        isinstance(write, Statement)
        and write.statement is first.statement
        and write.parameters.keys() == first.parameters.keys()
    )


async def _driver_in_transaction(connection: AsyncConnection, statement: str) -> asyncpg.Connection:
    """The asyncpg connection under `connection`, whose transaction a statement must have begun."""
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    if driver is None or not driver.is_in_transaction():
        raise RuntimeError(f"{statement} outside a transaction: run a statement of it first")
    return driver


async def _insert_few(connection: AsyncConnection, write: ColumnInsert) -> None:
    """Insert a few rows by one INSERT that unnests one array per column, straight on the driver."""
    sql = insert_sql(write.table, write.columns, connection.dialect, _unnested_insert_unbounded)
    driver = await _driver_in_transaction(connection, f"INSERT INTO {write.table.name}")
    with translated(f"INSERT INTO {write.table.name}"):
        await driver.execute(sql, *(list(values) for values in write.values))


def _unnest_into(table: Table, columns: tuple[str, ...], *, bounded: bool) -> Insert:
    """`INSERT INTO table (columns) SELECT * FROM unnest(...)`, with one array parameter per column (`unnested`)."""
    rows = unnested(table, columns, bounded=bounded)
    return insert(table).from_select(columns, select(*[rows.c[name] for name in columns]))


_unnested_insert = functools.partial(_unnest_into, bounded=True)
# A publish's few rows, written by one INSERT where COPY takes two round trips.
_unnested_insert_unbounded = functools.partial(_unnest_into, bounded=False)


# The age of each pooled connection's claim plans, from its first claim.
_CLAIM_PLAN_AGES: weakref.WeakKeyDictionary[asyncpg.Connection, PlanAge] = weakref.WeakKeyDictionary()


async def _plans_aged(connection: AsyncConnection) -> bool:
    """Whether the claim plans on `connection`'s driver connection are due to be made again (`PlanAge`)."""
    driver = await _driver_in_transaction(connection, "DISCARD PLANS")
    age = _CLAIM_PLAN_AGES.get(driver)
    if age is None:
        _CLAIM_PLAN_AGES[driver] = PlanAge()
        return False
    return age.due()


def _reader(connection: AsyncConnection) -> Reader:
    """Runs a `Read` in `connection`'s transaction, its rows as tuples."""

    async def read(statement: Read) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await connection.execute(statement.statement, statement.parameters)]

    return read


POSTGRESQL: StoreDialect = PostgreSQLDialect()
