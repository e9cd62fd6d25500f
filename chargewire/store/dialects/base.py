"""What the store asks of a database: every way SQLite and PostgreSQL differ, behind one protocol.

A `StoreDialect` is chosen once, when the database is created (`store.database.create_database`), and the
store asks it instead of asking which database it got. `dialects.sqlite` and `dialects.postgresql` each hold
one database's side of every difference.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy import ColumnElement, Insert, Select, Table
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.expression import UpdateBase

from chargewire.store.dialects.conflicts import ConflictUpdate
from chargewire.store.dialects.engine import OpenedEngine
from chargewire.store.dialects.writes import ColumnInsert, GuardedWrites, Statement, Write

if TYPE_CHECKING:
    from chargewire.store.database import Database
    from chargewire.store.delivery_writes import PublishLease
    from chargewire.store.dialects.postgresql_wakeups import AssignedWaiter
    from chargewire.store.dialects.upkeep import Upkeep

# `StoreDialect.minute_text`'s form, as strftime and strptime write it.
MINUTE_FORMAT = "%Y-%m-%d %H:%M"

# Begins a write transaction, committed when its block ends without an error.
WriteTransactions = Callable[[], AbstractAsyncContextManager[AsyncConnection]]
SelectT = TypeVar("SelectT", bound=Select[Any])
# The webhook deliveries a commit made due, as (delivery id, subscription id) in id order: a wake-up that names
# them lets a worker lease exactly those (`DeliveryStore.claim_announced`); an empty one means "look".
Announced = Sequence[tuple[str, str]]
# Set in a task whose write transactions a client's answer waits for (`go_first`).
_goes_first: ContextVar[bool] = ContextVar("chargewire_writes_go_first", default=False)


def go_first() -> None:
    """Let the calling task's write transactions take the database's writer before other waiting writers.

    For a publish's group commit, whose clients wait for its answer. SQLite has one writer, whose queue
    (`sqlite_writer.WriterTurns`) honours it; PostgreSQL has no such queue, and there it changes nothing.
    """
    _goes_first.set(True)


def goes_first() -> bool:
    """Whether the calling task's write transactions go first (`go_first`)."""
    return _goes_first.get()


@dataclass(frozen=True, slots=True)
class WakeHooks:
    """What a wake listener uses: `wake` wakes the dispatcher; a listener that watches commits asks `newest` (the
    newest work committed: deliveries, events) and `due` (whether the worker has deliveries due, whether it has
    Kafka streams behind: one row of two) with the parameters `due_parameters()` gives at the time of asking."""

    wake: Callable[[], None]
    newest: Select[Any]
    due: Select[*tuple[Any, ...]]
    due_parameters: Callable[[], Mapping[str, Any]]
    # Told instead of `wake` when a wake-up names the deliveries it made due (PostgreSQL's NOTIFY payload).
    announced: Callable[[Announced], None] | None = None
    # The worker, and what it does with a wake-up that carries deliveries another process's publish wrote leased to
    # workers, given those leased to it (PostgreSQL's NOTIFY payload, `postgresql_announcements.Assignment`).
    assigned: tuple[str, AssignedWaiter] | None = None
    # Told just before `wake` when the listener has read that deliveries are due (`due`'s first column): the
    # dispatcher's claim need not ask again.
    due_seen: Callable[[], None] | None = None


@dataclass(frozen=True, slots=True)
class Read:
    """A statement whose rows a transaction reads (through a `Reader`): a SELECT, or a write with RETURNING; a
    publish's last writes are made from them, a claim's lease from its scan.

    Its statement is built once (a module constant, or cached per dialect) with its values bound by name, so that
    it is compiled once.
    """

    statement: Select[*tuple[Any, ...]] | UpdateBase
    parameters: Mapping[str, Any]
    # False for a read that may walk past many rows to find few: SQLite never runs it in the event loop's thread.
    bounded: bool = True


# The rows each read returned, as tuples of Python values.
ReadRows = list[list[tuple[Any, ...]]]
# Runs one more read in the transaction at hand; returns its rows.
Reader = Callable[[Read], Awaitable[list[tuple[Any, ...]]]]
# Makes a transaction's last writes from the rows its reads returned (reading more first, if it must).
WritesFrom = Callable[[ReadRows, Reader], Awaitable[Sequence[Write]]]


@dataclass(frozen=True, slots=True)
class GuessedPublish:
    """A publish's inserts made from a guess of its subscribers (those the last publish of its names read), to write
    only if `subscribers` still reads exactly `guess`.

    `numbering` (an UPDATE ... RETURNING the last number taken, its count bound) numbers `events`' rows in order,
    into their column `number_into`; `deliveries` are written beside them. Unless `wake` is None, its commit also
    wakes other processes' workers (the `WakeSender`'s wake-up, sent by the statement), naming the deliveries in
    `wake`: none for a publish that did not commit, and no round trip of its own.
    """

    subscribers: Read
    guess: Sequence[tuple[Any, ...]]
    numbering: Read
    events: ColumnInsert
    number_into: str
    deliveries: ColumnInsert
    wake: Announced | None = None
    # Deliveries leased to a worker of another process: the wake-up carries them to it whole (then `wake` is set).
    assigned: PublishLease | None = None


class GuessedPublisher(Protocol):
    """Writes a publish made from a guess of its subscribers in one statement, which checks the guess itself."""

    # The most events, or deliveries, it writes in one statement; a larger publish goes by `write_after_reads`.
    max_rows: int

    async def write(self, publish: GuessedPublish) -> int | None:
        """Write `publish` if its guess holds; the last number it took, or None, having written nothing."""
        ...


class WakeSender(Protocol):
    """Tells other processes' workers, after commits, that deliveries may be due."""

    def request(self, announced: Announced = ()) -> None:
        """Ask for a wake-up soon (call it after a commit), naming the deliveries it made due if it knows them all;
        returns at once."""
        ...

    async def flush(self) -> None:
        """Wait until every request made so far has been sent (or given up on)."""
        ...

    async def aclose(self) -> None:
        """Send what was asked for (a bounded wait), then release the connection."""
        ...


class WakeWatcher(Protocol):
    """Wakes this process's dispatcher when another process makes deliveries due."""

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until `stop` is set."""
        ...


class StoreDialect(Protocol):
    """One database's side of every SQLite/PostgreSQL difference the store has."""

    name: str

    # Hashable, so that statements built from a dialect can be cached per dialect.
    def __hash__(self) -> int: ...

    def open_engine(self, url: URL, echo: bool) -> OpenedEngine:
        """An engine for the database at `url`, through this dialect's async driver, every wait bounded."""
        ...

    def write_transactions(self, engine: AsyncEngine) -> WriteTransactions:
        """How `engine`'s write transactions begin: at once, or each waiting for the one writer before it."""
        ...

    def minute_text(self, moment: ColumnElement[Any]) -> ColumnElement[str]:
        """`moment`'s minute as 'YYYY-MM-DD HH:MM' text."""
        ...

    def seconds_between(self, later: ColumnElement[Any], earlier: ColumnElement[Any]) -> ColumnElement[Any]:
        """Seconds from `earlier` to `later`, as a number."""
        ...

    def one_of(self, column: ColumnElement[str], ids: Collection[str] | None) -> ColumnElement[bool]:
        """`column IN ids`, with the ids bound as one parameter named `ids` (`ids` None: bound later, to
        what `ids_value` makes of them).

        `in_()` binds one parameter per id and renders the statement anew for every length: for the thousand
        ids of a claim that cost more than running the statement.
        """
        ...

    def ids_value(self, ids: Collection[str]) -> Any:
        """The value `one_of` binds for `ids`."""
        ...

    def claim_transaction(self, database: Database) -> AbstractAsyncContextManager[Reader]:
        """A worker's claim: a write transaction of its own, committed when the block ends without an error, whose
        statements (SELECTs, writes with RETURNING) run one at a time through the `Reader` it gives.

        PostgreSQL plans them for any values (a generic plan), not for the values bound. SQLite runs them straight
        on the writers' driver connection, each in the event loop's thread when it need not wait there
        (`sqlite_engine.commit_after_reads`): through SQLAlchemy a claim was four trips to the driver's thread.
        """
        ...

    async def lone_read(self, connection: AsyncConnection) -> None:
        """Let a fresh connection that runs one read and nothing else run it without a transaction round it."""
        ...

    def skip_locked(self, query: SelectT, of: Table) -> SelectT:
        """`query`, locking the rows of `of` it reads and passing over those another worker has locked."""
        ...

    async def unlocked(self, read: Reader, query: Select[str], values: Mapping[str, Any], of: Table) -> set[str] | None:
        """What `query` reads with `values`, through `read`, of rows of `of` that no other worker has locked, locking
        them; None where no other worker can hold a row lock."""
        ...

    async def insert_rows(
        self, connection: AsyncConnection, table: Table, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
    ) -> None:
        """Insert `rows` (values of `columns`, as the driver takes them) in as few calls as the database allows."""
        ...

    async def insert_columns(
        self, connection: AsyncConnection, table: Table, columns: tuple[str, ...], values: tuple[Sequence[Any], ...]
    ) -> None:
        """Insert rows held one sequence per column, in the transaction a statement on `connection` began."""
        ...

    async def write_guarded(self, connection: AsyncConnection, writes: GuardedWrites) -> bool:
        """Run `writes` in the transaction `connection` began; False, having written nothing, when the guard
        changed no row. Nothing may run on `connection` afterwards: the transaction may have ended."""
        ...

    async def write_last(self, connection: AsyncConnection, writes: Sequence[Write]) -> None:
        """Run `writes` as the last statements of the transaction `connection` began (SQLite commits with them,
        in one trip). Nothing may run on `connection` afterwards: the transaction may have ended."""
        ...

    async def write_last_after_reads(
        self, connection: AsyncConnection, reads: Sequence[Read], guess: ReadRows | None, writes_from: WritesFrom
    ) -> ReadRows:
        """Run `reads`, then the writes `writes_from` makes of their rows, as the last statements of the transaction
        `connection` began; returns the rows read. Nothing may run on `connection` afterwards.

        Given a `guess` of the rows, SQLite makes the writes from it beforehand and sends the reads, the writes
        and the commit in one trip, writing only if the reads returned the guess (else it makes them anew from the
        rows read): a publish's three trips to the driver's thread were most of its cost at low rates.
        `writes_from` may be called more than once, and only its last writes count.
        """
        ...

    async def write_after_reads(
        self, database: Database, reads: Sequence[Read], guess: ReadRows | None, writes_from: WritesFrom
    ) -> ReadRows:
        """`write_last_after_reads` in a write transaction of its own, on SQLite straight on the driver's
        connection (`SerialWriter.driver_transaction`)."""
        ...

    async def commit_writes(self, database: Database, writes: Sequence[Write]) -> None:
        """Run `writes` in a write transaction of their own and commit it; on SQLite straight on the driver's
        connection (`SerialWriter.driver_transaction`), past SQLAlchemy's begin and commit."""
        ...

    async def write_returning(
        self, connection: AsyncConnection, statements: Sequence[Statement]
    ) -> list[list[tuple[Any, ...]]]:
        """Run `statements` as the last of the transaction `connection` began (SQLite commits with them, in one
        trip); returns the rows each returned (RETURNING), as tuples. Nothing may run on `connection` afterwards."""
        ...

    def time_value(self) -> Callable[[datetime | None], Any] | None:
        """What the driver is given for an aware datetime of a `UtcDateTime` column, made without SQLAlchemy's
        bind processors; None where those processors are the way."""
        ...

    def insert_on_conflict(self, table: Table, keys: Sequence[str], update: ConflictUpdate | None = None) -> Insert:
        """`INSERT INTO table ... ON CONFLICT (keys)`: DO UPDATE SET what `update` makes of the proposed row
        (its `excluded` columns), or DO NOTHING when `update` is None. Both databases allow RETURNING after it."""
        ...

    async def continue_ids(self, connection: AsyncConnection, table: Table) -> None:
        """Make `table`'s generated ids continue after the largest one, once rows were inserted with given ids."""
        ...

    # Whether an UPDATE may run inside a WITH, so a statement can read or write beside the rows it updates.
    updates_in_with: bool

    def guessed_publisher(self, database: Database) -> GuessedPublisher | None:
        """What writes a publish made from guessed subscribers in one statement (PostgreSQL: a round trip instead of
        six); None where `write_after_reads` takes the guess itself (SQLite, in one trip to its driver's thread)."""
        ...

    def wake_notifier(self, database: Database) -> WakeSender | None:
        """What tells other processes after a commit; None where they find out for themselves."""
        ...

    def wake_listener(self, database: Database, hooks: WakeHooks) -> WakeWatcher | None:
        """What wakes the dispatcher when another process makes deliveries due; None where no other process can."""
        ...

    def upkeep(self, database: Database) -> Upkeep:
        """Retention's work on this database: measuring its tables, dropping partitions, giving space back."""
        ...
