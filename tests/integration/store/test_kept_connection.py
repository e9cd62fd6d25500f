"""A connection kept out of PostgreSQL's pool for one kind of statement (a publish, an announced claim, a record):
replaced when the server closed it, kept through a statement's own error, dropped when cancelled in mid-statement,
and a second statement meanwhile gets a pooled one."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError

from chargewire.runtime import Runtime
from chargewire.store.dialects.postgresql_driver import KeptConnection

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


async def _backend_pid(kept: KeptConnection) -> int:
    async with kept.driver("pid") as driver:
        pid: int = await driver.fetchval("SELECT pg_backend_pid()")
    return pid


async def test_a_statement_sent_while_the_kept_connection_is_in_use_goes_on_another_connection(
    runtime: Runtime,
) -> None:
    kept = KeptConnection(runtime.database.engine)
    async with kept.driver("first") as first, kept.driver("second") as second:
        kept_session = await first.fetchval("SELECT pg_backend_pid()")
        other_session = await second.fetchval("SELECT pg_backend_pid()")
    async with kept.driver("again") as again:
        again_session = await again.fetchval("SELECT pg_backend_pid()")

    assert other_session != kept_session
    assert again_session == kept_session  # the kept one again, once free


async def test_a_kept_connection_the_server_closed_is_replaced_before_the_next_statement(runtime: Runtime) -> None:
    kept = KeptConnection(runtime.database.engine)
    async with kept.driver("first") as driver:
        first_pid = await driver.fetchval("SELECT pg_backend_pid()")
    closed = asyncio.Event()
    driver.add_termination_listener(lambda _connection: closed.set())
    async with runtime.database.reading() as connection:
        await connection.exec_driver_sql(f"SELECT pg_terminate_backend({first_pid})")
    await closed.wait()  # the server's message and FIN arrive at a later turn of the event loop

    assert await _backend_pid(kept) != first_pid


async def test_a_statement_s_own_error_keeps_the_kept_connection(runtime: Runtime) -> None:
    kept = KeptConnection(runtime.database.engine)
    pid = await _backend_pid(kept)
    with pytest.raises(DBAPIError) as raised:
        async with kept.driver("divide") as driver:
            await driver.fetchval("SELECT 1 / 0")

    assert isinstance(raised.value.orig, asyncpg.DivisionByZeroError)
    assert await _backend_pid(kept) == pid


async def test_a_kept_connection_cancelled_in_mid_statement_is_dropped_and_replaced(runtime: Runtime) -> None:
    kept = KeptConnection(runtime.database.engine)
    pid = await _backend_pid(kept)

    async def sleeping() -> None:
        async with kept.driver("sleep") as driver:
            await driver.execute("SELECT pg_sleep(30)")

    task = asyncio.create_task(sleeping())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await _backend_pid(kept) != pid
