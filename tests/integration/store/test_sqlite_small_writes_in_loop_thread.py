"""SQLite's small one-trip write transactions run in the event loop's thread unless they could wait there.

Each row records the thread that inserted it (a SQL function), so a test reads where its transaction ran.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from chargewire.store.database import Database, create_database
from chargewire.store.dialects.sqlite_engine import (
    BEGIN_WRITE,
    OneTripConnection,
    Step,
    commit_after_reads,
    commit_statements,
)

_INSERT = "INSERT INTO items (thread, body) VALUES (current_thread(), ?)"


@pytest.fixture
def database_path(tmp_path: Path) -> Path:
    return tmp_path / "chargewire.db"


@pytest.fixture
async def database(database_path: Path) -> AsyncIterator[Database]:
    database = create_database(f"sqlite+aiosqlite:///{database_path}")
    async with database.transaction() as connection:
        await connection.execute(text("CREATE TABLE items (id INTEGER PRIMARY KEY, thread INTEGER, body TEXT)"))
    yield database
    await database.aclose()


@pytest.fixture
async def driver(database: Database) -> AsyncIterator[OneTripConnection]:
    async with database.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert isinstance(driver, OneTripConnection)
        driver.sqlite_connection.create_function("current_thread", 0, threading.get_ident)
        yield driver


def _insert(*bodies: str) -> Step:
    return (
        _INSERT.replace("(current_thread(), ?)", ", ".join(["(current_thread(), ?)"] * len(bodies))),
        bodies,
        True,
        None,
    )


def _threads(database_path: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(database_path) as reader:
        return list(reader.execute("SELECT thread, body FROM items ORDER BY id"))


async def test_a_small_write_transaction_runs_and_commits_in_the_event_loops_thread(
    driver: OneTripConnection, database_path: Path
) -> None:
    driver.pending_begin = BEGIN_WRITE

    await commit_statements(driver, [_insert("a"), _insert("b")])

    assert _threads(database_path) == [(threading.get_ident(), "a"), (threading.get_ident(), "b")]
    assert not driver.in_transaction


async def test_writes_after_reads_that_missed_their_guess_run_in_the_loops_thread_under_the_lock_taken(
    driver: OneTripConnection, database_path: Path
) -> None:
    driver.pending_begin = BEGIN_WRITE
    count: Step = ("SELECT count(*) FROM items", (), False, None)

    read, committed = await commit_after_reads(driver, [count], [[(1,)]], [_insert("guessed")])
    assert (read, committed) == ([[(0,)]], False)
    assert driver.in_transaction  # the reads' transaction stays open for writes made from what they read
    await commit_statements(driver, [_insert("from the rows read")])

    assert _threads(database_path) == [(threading.get_ident(), "from the rows read")]


async def test_a_write_behind_another_connections_lock_waits_in_the_drivers_thread_and_the_loop_runs_on(
    driver: OneTripConnection, database_path: Path
) -> None:
    holder = sqlite3.connect(database_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    driver.pending_begin = BEGIN_WRITE
    writing = asyncio.ensure_future(commit_statements(driver, [_insert("after the lock")]))

    await asyncio.sleep(0.1)  # the loop runs this task on while the write waits for the lock
    assert not writing.done()
    holder.rollback()
    holder.close()
    await writing

    [(thread, body)] = _threads(database_path)
    assert (thread != threading.get_ident(), body) == (True, "after the lock")


async def test_a_large_write_transaction_goes_to_the_drivers_thread(
    driver: OneTripConnection, database_path: Path
) -> None:
    bodies = [f"row {n}" for n in range(300)]
    driver.pending_begin = BEGIN_WRITE

    await commit_statements(driver, [_insert(*bodies)])

    rows = _threads(database_path)
    assert [body for _thread, body in rows] == bodies
    assert {thread for thread, _body in rows} != {threading.get_ident()}


async def test_a_write_sent_while_the_drivers_thread_still_runs_a_call_goes_after_it_there(
    driver: OneTripConnection, database_path: Path
) -> None:
    release = threading.Event()
    order: list[str] = []

    def busy(_connection: sqlite3.Connection) -> None:
        release.wait(10)
        order.append("earlier call")

    earlier = asyncio.ensure_future(driver.run(busy))
    await asyncio.sleep(0.01)
    earlier.cancel()  # its caller gave up; the call still runs in the driver's thread
    driver.pending_begin = BEGIN_WRITE
    writing = asyncio.ensure_future(commit_statements(driver, [_insert("after it")]))
    await asyncio.sleep(0.01)
    assert not writing.done()
    release.set()
    await writing

    [(thread, body)] = _threads(database_path)
    assert (order, thread != threading.get_ident(), body) == (["earlier call"], True, "after it")
