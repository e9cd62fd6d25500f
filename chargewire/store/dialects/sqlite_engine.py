"""The SQLite engine: WAL mode, one trip to the driver's thread per statement, checkpoints in the background.

SQLite's tail latency comes from how long the one writer holds the write lock, and two things stretched
that: every trip to aiosqlite's thread waits for a turn of a busy event loop (and for the GIL), and
SQLAlchemy's aiosqlite adapter made four trips per statement; and a WAL auto-checkpoint ran inside the
commit that crossed ~1,000 pages. So statements go in one trip each (`OneTripConnection`), BEGIN rides along
with the first statement, and a background thread checkpoints (`WalCheckpointer`) while the pooled
connections never do. A small write transaction sent as a whole (`commit_statements`, `commit_after_reads`)
makes no trip at all when it cannot wait: the event loop's thread runs it (`_commit_steps_here`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine

from chargewire.store.dialects.engine import DATABASE_WAIT_S, JSON_CODEC, OpenedEngine
from chargewire.store.dialects.sqlite_checkpoint import WalCheckpointer

_BUSY_TIMEOUT_MS = int(DATABASE_WAIT_S * 1000)
WRITE_OPTION = "chargewire_write"
BEGIN_WRITE = "BEGIN IMMEDIATE"
# Asking again for SQLite's write lock while another process holds it: from 0.5 ms, doubling to 4 ms.
_WRITE_RETRY_FIRST_S = 0.0005
_WRITE_RETRY_MAX_S = 0.004

# A one-trip transaction with more bound values than this goes to the driver's thread even when it could run
# in the event loop's: a group commit at a high rate would hold the loop up for milliseconds.
_MAX_VALUES_HERE = 256

# Prepared statements kept per connection (sqlite3's default is 128): the multi-row INSERTs of a group commit are
# up to ~70 per table (`sqlite._chunks`), and a statement pushed out is parsed again on its next use.
_CACHED_STATEMENTS = 512

# A WAL that was reset is cut back to this size, so a burst does not leave a big file behind; above the WAL the
# checkpointer lets grow before it restarts it (8,000 pages, `sqlite_checkpoint`), so a restart does not cut it.
_JOURNAL_SIZE_LIMIT_BYTES = 40 * 2**20


def open_sqlite_engine(url: str, path: str | None, echo: bool) -> OpenedEngine:
    """SQLite at `path` in WAL mode, one trip per statement, checkpoints in the background (on disk)."""
    on_disk = bool(path) and path != ":memory:"
    if on_disk:
        assert path is not None
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Every event and stored secret is in this file: its owner's alone. SQLite gives its -wal and -shm files
        # the database file's mode, so they follow.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    connect = functools.partial(
        sqlite3.connect,
        path or ":memory:",
        timeout=DATABASE_WAIT_S,
        check_same_thread=False,
        factory=_LockWaitConnection,
        cached_statements=_CACHED_STATEMENTS,
    )

    async def one_trip_connection() -> OneTripConnection:
        connection = OneTripConnection(connect, iter_chunk_size=64)
        await connection  # starts its thread and connects there
        return connection

    engine = create_async_engine(url, echo=echo, async_creator=one_trip_connection, **JSON_CODEC)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself instead of the driver's implicit one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode (or in memory, where no other connection is) the holder of the write lock never waits.
        record.driver_connection.sqlite_connection.lock_holder_waits = cursor.fetchone()[0] not in ("wal", "memory")
        # WAL with synchronous=NORMAL survives a killed process; only a power loss can undo the last commits.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        if on_disk:
            # The checkpointer's thread does this; inside a commit it would hold every other writer up.
            cursor.execute("PRAGMA wal_autocheckpoint=0")
            cursor.execute(f"PRAGMA journal_size_limit={_JOURNAL_SIZE_LIMIT_BYTES}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A writer that begins IMMEDIATE holds the lock from the start, so it never fails to upgrade later.
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        # Sent with the first statement, in the same trip to the driver's thread.
        driver_connection = connection.connection.driver_connection
        driver_connection.pending_begin = BEGIN_WRITE if immediate else "BEGIN"

    checkpointer = WalCheckpointer(Path(path)) if on_disk and path is not None else None
    if checkpointer is not None:
        checkpointer.start()
    return OpenedEngine(engine, checkpointer, Path(path) if on_disk and path is not None else None)


# A statement of a one-trip transaction: its SQL, its parameters, whether it must change rows (else the
# transaction is rolled back there), and what makes each row it returns Python values (None: as the driver does).
Step = tuple[str, tuple[Any, ...], bool, Callable[[Any], Any] | None]


async def commit_statements(driver_connection: Any, steps: Sequence[Step]) -> list[list[Any]] | None:
    """Run the steps in the transaction begun on a SQLite driver connection, then commit, in one trip to its
    thread; returns the rows each step returned (RETURNING), or None, rolled back, if a step that must change
    rows changed none."""
    returned, _read = await _run_in_one_trip(driver_connection, (), None, steps)
    return returned


async def commit_after_reads(
    driver_connection: Any,
    reads: Sequence[Step],
    guess: list[list[Any]] | None,
    writes: Sequence[Step],
    *,
    here: bool = True,
) -> tuple[list[list[Any]], bool]:
    """Run `reads`, then, if they returned `guess`, `writes` and commit, in one trip; returns the rows read and
    whether it wrote and committed. When the rows differ from the guess (or there is none), the transaction is
    left open after the reads, for writes made from the rows read. Not `here`: in the driver's thread even when
    the event loop's could run them (reads that may walk far, which would hold the loop up)."""
    returned, read = await _run_in_one_trip(driver_connection, reads, guess, writes, here)
    if returned is None:
        raise RuntimeError("a one-trip commit after reads has no step that must change rows")
    return read, len(returned) == len(writes) and read == guess


async def _run_in_one_trip(
    driver_connection: Any,
    reads: Sequence[Step],
    guess: list[list[Any]] | None,
    writes: Sequence[Step],
    here: bool = True,
) -> tuple[list[list[Any]] | None, list[list[Any]]]:
    if not isinstance(driver_connection, OneTripConnection):
        raise TypeError(f"a one-trip commit needs a SQLite connection of this module, not {driver_connection!r}")
    begin, driver_connection.pending_begin = driver_connection.pending_begin, None
    try:
        ran = _commit_steps_here(driver_connection, begin, reads, guess, writes) if here else None
        outcome: tuple[list[list[Any]] | None, list[list[Any]]] = (
            ran if ran is not None else await driver_connection.run(_commit_steps, begin, reads, guess, writes)
        )
    except BaseException:
        if begin is not None and not driver_connection.in_transaction:
            driver_connection.pending_begin = begin  # BEGIN itself failed: nothing was sent
        raise
    return outcome


def _commit_steps_here(
    driver_connection: OneTripConnection,
    begin: str | None,
    reads: Sequence[Step],
    guess: list[list[Any]] | None,
    writes: Sequence[Step],
) -> tuple[list[list[Any]] | None, list[list[Any]]] | None:
    """`_commit_steps` run in the calling thread (the event loop's) when it cannot wait there: the connection
    holds SQLite's write lock in WAL mode, or takes it at once, and its thread has nothing left to run. None,
    with nothing sent, when it must go to the driver's thread instead.

    A trip to the driver's thread wakes that thread and then the event loop (`call_soon_threadsafe`), with the
    GIL handed over each way: at 50 and 200 events/s that cost a publish or a record flush more CPU than its
    few statements. Under the write lock in WAL mode no statement waits for another connection, so a small
    transaction runs here in a few hundred microseconds; one whose BEGIN IMMEDIATE would wait for another
    process's lock, and a large one (a batch at a high rate, which would hold the loop up), still go to the
    driver's thread.
    """
    if not driver_connection.idle or _values(reads, writes) > _MAX_VALUES_HERE:
        return None
    connection = driver_connection.sqlite_connection
    if connection.lock_holder_waits:
        return None
    if begin == BEGIN_WRITE:
        if not _begin_write_at_once(connection):
            return None
    elif begin is not None or not (connection.in_transaction and connection.writing):
        return None
    return _commit_steps(connection, None, reads, guess, writes)


def _values(reads: Sequence[Step], writes: Sequence[Step]) -> int:
    return sum([len(step[1]) for step in (*reads, *writes)])


def _begin_write_at_once(connection: _LockWaitConnection) -> bool:
    """BEGIN IMMEDIATE unless another connection holds the write lock (then nothing was begun); whether it began."""
    cursor = connection.cursor()
    try:
        _wait_when_busy(connection, cursor, False)
        try:
            cursor.execute(BEGIN_WRITE)
        except sqlite3.OperationalError as error:
            if "locked" not in str(error):
                raise
            return False
        connection.writing = True
        return True
    finally:
        cursor.close()


def _commit_steps(
    connection: _LockWaitConnection,
    begin: str | None,
    reads: Sequence[Step],
    guess: list[list[Any]] | None,
    writes: Sequence[Step],
) -> tuple[list[list[Any]] | None, list[list[Any]]]:
    """In the driver's thread: BEGIN if due, run the reads; unless they differ from `guess` (when there are
    reads), run the writes and commit (or roll back at a step that changed nothing). Returns the rows the
    writes returned (None when rolled back, [] when not run) and those the reads returned."""
    cursor = connection.cursor()
    try:
        _begin(connection, cursor, begin)
        read = [_run_step(cursor, step) for step in reads]
        if reads and read != guess:
            return [], read
        returned = []
        for step in writes:
            returned.append(_run_step(cursor, step))
            if step[2] and cursor.rowcount == 0:
                connection.rollback()
                return None, read
        connection.commit()
        return returned, read
    finally:
        cursor.close()


def _run_step(cursor: sqlite3.Cursor, step: Step) -> list[Any]:
    sql, parameters, _must_change_rows, process = step
    cursor.execute(sql, parameters)
    rows = cursor.fetchall() if cursor.description else []
    return rows if process is None else [process(row) for row in rows]


def _run_statement(
    connection: _LockWaitConnection, begin: str | None, many: bool, sql: str, parameters: Any
) -> tuple[Any, list[Any], int, Any]:
    """In the driver's thread: BEGIN if due, run one statement, fetch its rows, close the cursor."""
    cursor = connection.cursor()
    try:
        _begin(connection, cursor, begin)
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _begin(connection: _LockWaitConnection, cursor: sqlite3.Cursor, begin: str | None) -> None:
    if begin == BEGIN_WRITE:
        _begin_write(connection, cursor)
        connection.writing = True
    elif begin is not None:
        connection.writing = False
        _wait_when_busy(connection, cursor, True)
        cursor.execute(begin)


def _begin_write(connection: _LockWaitConnection, cursor: sqlite3.Cursor) -> None:
    """Take the write lock, asking again every few milliseconds while another process holds it.

    SQLite's own busy handler sleeps in growing steps (up to 100 ms each) and so comes back long after a
    short transaction of another process has ended: with an API and four worker processes on one file, those
    sleeps were the latency's tail. Only this BEGIN retries itself: the busy timeout is off for it, and back on
    before this connection next begins a read. In WAL mode the statements in between, run under the write lock,
    never wait for another connection, so a run of write transactions sets it neither off nor on again (two
    PRAGMAs were a third of a publish's statements).
    """
    _wait_when_busy(connection, cursor, False)
    try:
        deadline = time.monotonic() + DATABASE_WAIT_S
        pause_s = _WRITE_RETRY_FIRST_S
        while True:
            try:
                cursor.execute(BEGIN_WRITE)
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() >= deadline:
                    raise
            time.sleep(pause_s)
            pause_s = min(pause_s * 2, _WRITE_RETRY_MAX_S)
    finally:
        if connection.lock_holder_waits:
            # A rollback journal's COMMIT waits for readers to finish: it keeps the busy timeout.
            _wait_when_busy(connection, cursor, True)


def _wait_when_busy(connection: _LockWaitConnection, cursor: sqlite3.Cursor, wait: bool) -> None:
    """Turn the connection's busy timeout on or off, unless it already is."""
    if connection.waits_when_busy is not wait:
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS if wait else 0}")
        connection.waits_when_busy = wait


class _LockWaitConnection(sqlite3.Connection):
    """A pooled sqlite3 connection that remembers whether its busy timeout is on, whether statements under its
    write lock may have to wait for other connections (not in WAL mode), and whether its last transaction began
    IMMEDIATE (holds the write lock while open); used by one thread at a time (`OneTripConnection.idle`)."""

    waits_when_busy = True
    lock_holder_waits = True
    writing = False


class _OneTripCursor:
    """An aiosqlite-style cursor that executes, fetches and closes in one trip to the connection's thread.

    aiosqlite makes a trip to create a cursor, one to execute, one to fetch and one to close; each waits for
    a turn of the event loop, and on SQLite the write lock is held across all of them. Rows are fetched
    eagerly, which SQLAlchemy's adapter does anyway for every cursor that is not server-side.
    """

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self._rows: list[Any] = []
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: Any = None
        self.arraysize = 1

    async def __aenter__(self) -> _OneTripCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._rows = []

    async def execute(self, sql: str, parameters: Any = None) -> _OneTripCursor:
        return await self._run(False, sql, () if parameters is None else parameters)

    async def executemany(self, sql: str, parameters: Any) -> _OneTripCursor:
        return await self._run(True, sql, parameters)

    async def _run(self, many: bool, sql: str, parameters: Any) -> _OneTripCursor:
        begin, self._connection.pending_begin = self._connection.pending_begin, None
        try:
            result = await self._connection.run(_run_statement, begin, many, sql, parameters)
        except BaseException:
            if begin is not None and not self._connection.in_transaction:
                self._connection.pending_begin = begin  # BEGIN itself failed: the next statement tries again
            raise
        self.description, self._rows, self.rowcount, self.lastrowid = result
        return self

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        size = size or self.arraysize
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def close(self) -> None:
        self._rows = []


class OneTripConnection(aiosqlite.Connection):
    """An aiosqlite connection whose cursors make one trip per statement, and which sends BEGIN with the next one."""

    pending_begin: str | None = None
    # Calls sent to the connection's thread (counted in the event loop) and finished there (counted in that
    # thread): one written by each thread alone, so comparing them needs no lock.
    _sent = 0
    _finished = 0

    @property
    def idle(self) -> bool:
        """Whether the connection's thread has finished all it was sent (even for a task cancelled meanwhile), so
        the event loop's thread may use the connection itself."""
        return self._sent == self._finished and self._connection is not None

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self._sent += 1
        return await super()._execute(self._finishing, fn, *args, **kwargs)  # type: ignore[no-untyped-call]

    def _finishing(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        finally:
            self._finished += 1

    def cursor(self) -> _OneTripCursor:  # type: ignore[override]
        return _OneTripCursor(self)

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    @property
    def sqlite_connection(self) -> _LockWaitConnection:
        """The driver's own connection (use it in the driver's thread)."""
        connection = self._conn
        if not isinstance(connection, _LockWaitConnection):
            raise TypeError(f"a one-trip connection is opened by this module, not as {connection!r}")
        return connection

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """Call `function(sqlite3_connection, *args)` in the connection's thread."""
        return await self._execute(function, self._conn, *args)

    async def commit(self) -> None:
        # A transaction that ran no statement never sent its BEGIN, and one committed in its last trip
        # (`commit_statements`) has ended: nothing to commit, no trip to make.
        if self.pending_begin is not None or not self.in_transaction:
            self.pending_begin = None
            return
        await super().commit()

    async def rollback(self) -> None:
        # The pool rolls back every connection it takes back; after a commit there is nothing to undo. Reading
        # the flag here is safe: a connection is only ever used by the one task that checked it out.
        if self.pending_begin is not None or not self.in_transaction:
            self.pending_begin = None
            return
        await super().rollback()
