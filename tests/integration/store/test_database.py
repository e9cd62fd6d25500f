"""SQLite's connection rules: transactions, checkpoints in the background, commits that outlive the process."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import event, text

from chargewire.store import migrate
from chargewire.store.database import Database, create_database
from chargewire.store.dialects.engine import DATABASE_WAIT_S
from chargewire.store.dialects.sqlite_checkpoint import WalCheckpointer

_ROW_BYTES = 4096


@pytest.fixture
def database_path(tmp_path: Path) -> Path:
    return tmp_path / "chargewire.db"


@pytest.fixture
async def database(database_path: Path) -> AsyncIterator[Database]:
    database = create_database(f"sqlite+aiosqlite:///{database_path}")
    async with database.transaction() as connection:
        await connection.execute(text("CREATE TABLE items (id INTEGER PRIMARY KEY, body BLOB NOT NULL)"))
    yield database
    await database.aclose()


async def _insert(database: Database, rows: int) -> None:
    async with database.transaction() as connection:
        await connection.execute(
            text("INSERT INTO items (body) VALUES (randomblob(:size))"), [{"size": _ROW_BYTES}] * rows
        )


async def _count(database: Database) -> int:
    async with database.reading() as connection:
        return int((await connection.execute(text("SELECT count(*) FROM items"))).scalar_one())


def _wal_bytes(database_path: Path) -> int:
    return Path(f"{database_path}-wal").stat().st_size


async def _eventually(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    """Wait for a background thread to get to it; the deadline only stops a broken test from hanging."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the condition did not come true")
        await asyncio.sleep(0.05)


async def test_sqlite_transaction_commits_every_statement(database: Database) -> None:
    async with database.transaction() as connection:
        await connection.execute(text("INSERT INTO items (body) VALUES (x'01')"))
        changed = await connection.execute(text("UPDATE items SET body = x'02' WHERE id = 1"))
        assert changed.rowcount == 1
        returned = await connection.execute(text("UPDATE items SET body = x'03' RETURNING id"))
        assert returned.scalars().all() == [1]
    async with database.reading() as connection:
        assert (await connection.execute(text("SELECT body FROM items"))).scalar_one() == b"\x03"


async def _insert_then_fail(database: Database) -> None:
    async with database.transaction() as connection:
        await connection.execute(text("INSERT INTO items (body) VALUES (x'01')"))
        raise RuntimeError("the caller gave up")


async def test_sqlite_transaction_that_fails_leaves_nothing_behind(database: Database) -> None:
    with pytest.raises(RuntimeError):
        await _insert_then_fail(database)
    assert await _count(database) == 0
    await _insert(database, 1)
    assert await _count(database) == 1


async def test_sqlite_transaction_without_statements_commits(database: Database) -> None:
    async with database.transaction():
        pass
    await _insert(database, 2)
    assert await _count(database) == 2


async def test_sqlite_writers_take_turns(database: Database) -> None:
    await asyncio.gather(*(_insert(database, 3) for _ in range(20)))
    assert await _count(database) == 60


async def test_a_writer_waits_out_another_connections_write_lock_and_then_commits(
    database: Database, database_path: Path
) -> None:
    other_process = sqlite3.connect(database_path, isolation_level=None, check_same_thread=False)
    other_process.execute("BEGIN IMMEDIATE")
    writing = asyncio.create_task(_insert(database, 1))
    await asyncio.sleep(0.3)
    assert not writing.done()  # still asking for the lock, not failed

    other_process.execute("COMMIT")
    await asyncio.wait_for(writing, 10)
    other_process.close()

    assert await _count(database) == 1


async def test_write_transactions_in_a_row_send_their_statements_and_no_busy_timeout_changes(
    database: Database,
) -> None:
    await _insert(database, 1)  # the writers' connection's first write turns its busy timeout off
    sent: list[str] = []
    async with database.transaction() as connection:  # sends nothing: no statement ran
        writer = (await connection.get_raw_connection()).driver_connection.sqlite_connection
        writer.set_trace_callback(sent.append)
    for _ in range(3):
        await _insert(database, 1)

    inserted = "INSERT INTO items (body) VALUES (randomblob(4096))"  # _ROW_BYTES, as SQLite's trace expands it
    assert sent == ["BEGIN IMMEDIATE", inserted, "COMMIT"] * 3


async def test_write_transactions_keep_one_connection_out_of_the_pool_until_one_fails(database: Database) -> None:
    taken: list[object] = []
    event.listen(database.engine.sync_engine.pool, "checkout", lambda *args: taken.append(args))
    await _insert(database, 1)
    await _insert(database, 1)
    assert taken == []  # the fixture's CREATE TABLE took it

    with pytest.raises(RuntimeError):
        await _insert_then_fail(database)
    await _insert(database, 1)

    assert len(taken) == 1  # given back to the pool, rolled back there, and another taken
    assert await _count(database) == 3


async def test_a_read_on_a_connection_a_writer_gave_back_waits_out_a_busy_database_again(database: Database) -> None:
    with pytest.raises(RuntimeError):
        await _insert_then_fail(database)  # its BEGIN IMMEDIATE turned the busy timeout off
    async with database.reading() as connection:
        busy_timeout_ms = (await connection.execute(text("PRAGMA busy_timeout"))).scalar_one()

    assert busy_timeout_ms == DATABASE_WAIT_S * 1000


async def test_sqlite_pooled_connections_leave_checkpoints_to_the_checkpointer(database: Database) -> None:
    async with database.reading() as connection:
        assert (await connection.execute(text("PRAGMA wal_autocheckpoint"))).scalar_one() == 0
    assert database.checkpointer is not None
    assert database.checkpointer.running


async def test_background_checkpointer_lets_the_wal_start_over(database: Database, database_path: Path) -> None:
    for _ in range(12):
        await _insert(database, 500)  # ~24 MB in all: the WAL would hold all of it without checkpoints
    checkpointer = database.checkpointer
    assert checkpointer is not None
    after_writes = checkpointer.checkpoints
    await _eventually(lambda: checkpointer.checkpoints >= after_writes + 2)
    # Everything is copied back, so the next writer starts the WAL over in place: written from its start, the file
    # (below the size limit) does not grow, where appended frames would have grown it.
    before = _wal_bytes(database_path)
    await _insert(database, 1)
    assert _wal_bytes(database_path) == before
    assert checkpointer.truncations == 0  # the size limit did it: no TRUNCATE held the writers up


async def test_checkpointer_truncates_a_wal_grown_past_its_limit(database_path: Path) -> None:
    writer = _wal_writer(database_path)
    writer.executemany("INSERT INTO items VALUES (randomblob(?))", [(_ROW_BYTES,)] * 500)
    assert _wal_bytes(database_path) > 2 * 2**20
    checkpointer = WalCheckpointer(database_path, truncate_wal_bytes=2**20)
    checkpointer.start()
    try:
        await _eventually(lambda: checkpointer.truncations >= 1)
        assert _wal_bytes(database_path) == 0
    finally:
        await asyncio.to_thread(checkpointer.stop)
        writer.close()


async def test_checkpointer_restarts_a_wal_that_steady_writers_never_let_a_checkpoint_finish(
    database_path: Path,
) -> None:
    writer = _wal_writer(database_path)
    stop = threading.Event()
    commits = 0

    def write_steadily() -> None:
        nonlocal commits
        while not stop.is_set():  # a commit every few milliseconds, as at a couple of hundred events a second
            writer.execute("INSERT INTO items VALUES (randomblob(?))", (_ROW_BYTES,))
            commits += 1
            stop.wait(0.002)

    checkpointer = WalCheckpointer(database_path, restart_frames=20)
    checkpointer.start()
    steady = threading.Thread(target=write_steadily)
    steady.start()
    try:
        await _eventually(lambda: checkpointer.restarts >= 1)
    finally:
        stop.set()
        await asyncio.to_thread(steady.join)
        await asyncio.to_thread(checkpointer.stop)
    writer.execute("INSERT INTO items VALUES (randomblob(?))", (_ROW_BYTES,))
    _busy, log_frames, _copied = writer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    writer.close()

    assert log_frames < commits  # every commit wrote a frame or more: the WAL started over since the first
    assert checkpointer.truncations == 0


async def test_another_process_closing_its_connection_leaves_the_wal_of_a_checkpointed_database_in_place(
    database_path: Path,
) -> None:
    writer = _wal_writer(database_path)
    for _ in range(40):
        writer.execute("INSERT INTO items VALUES (randomblob(?))", (_ROW_BYTES,))
    checkpointer = WalCheckpointer(database_path, restart_frames=20)
    checkpointer.start()
    try:
        await _eventually(lambda: checkpointer.restarts >= 1)
    finally:
        await asyncio.to_thread(checkpointer.stop)
    # A CLI command's connection opens and closes while this process's is open: it must not find itself the last
    # (it would checkpoint and delete the WAL this process still writes to), so the file stays and stays whole.
    reading = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('SELECT 1 FROM items'); c.close()"
    await asyncio.to_thread(subprocess.run, [sys.executable, "-c", reading, str(database_path)], check=True)
    assert database_path.with_name(database_path.name + "-wal").exists()
    writer.execute("INSERT INTO items VALUES (randomblob(?))", (_ROW_BYTES,))
    counting = (
        "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT count(*) FROM items').fetchone()[0])"
    )
    counting_run = [sys.executable, "-c", counting, str(database_path)]
    counted = await asyncio.to_thread(subprocess.run, counting_run, check=True, capture_output=True)
    assert int(counted.stdout) == 41
    assert writer.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    writer.close()


async def test_checkpointer_stops_when_the_database_closes(database_path: Path) -> None:
    database = create_database(f"sqlite+aiosqlite:///{database_path}")
    checkpointer = database.checkpointer
    assert checkpointer is not None
    assert checkpointer.running
    await database.aclose()
    assert not checkpointer.running


def test_commits_survive_a_killed_process(database_path: Path) -> None:
    program = textwrap.dedent(
        """
        import asyncio, os, signal, sys
        from sqlalchemy import event, text
        from chargewire.store.database import create_database

        async def main():
            database = create_database("sqlite+aiosqlite:///" + sys.argv[1])
            async with database.transaction() as connection:
                await connection.execute(text("CREATE TABLE items (id INTEGER PRIMARY KEY, body BLOB)"))
            for _ in range(50):
                async with database.transaction() as connection:
                    await connection.execute(text("INSERT INTO items (body) VALUES (randomblob(4096))"))
            os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint: only the WAL holds the commits

        asyncio.run(main())
        """
    )
    command = [sys.executable, "-c", program, str(database_path)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert finished.returncode == -9, finished.stderr

    async def count_after_restart() -> int:
        database = create_database(f"sqlite+aiosqlite:///{database_path}")
        try:
            return await _count(database)
        finally:
            await database.aclose()

    assert asyncio.run(count_after_restart()) == 50


async def test_the_embedded_database_and_its_wal_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "private" / "chargewire.db"
    database = create_database(f"sqlite+aiosqlite:///{path}")
    try:
        await migrate.upgrade(database)
        async with database.reading() as connection:
            await connection.execute(text("SELECT 1"))
        modes = {file.name: file.stat().st_mode & 0o777 for file in path.parent.iterdir()}
    finally:
        await database.aclose()
    assert modes["chargewire.db"] == 0o600
    assert modes["chargewire.db-wal"] == 0o600


def _wal_writer(database_path: Path) -> sqlite3.Connection:
    """A connection of its own to a WAL database with one table, `items`, that leaves checkpoints to the test."""
    writer = sqlite3.connect(database_path, isolation_level=None, check_same_thread=False)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE items (body BLOB)")
    return writer
