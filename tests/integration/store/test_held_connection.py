"""A connection a worker holds for its claims and records: replaced when the server closed it, kept through a
statement's own error, dropped when cancelled in mid-statement."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError

from chargewire.runtime import Runtime
from chargewire.store.dialects.postgresql_held import HeldConnection

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


async def _backend_pid(held: HeldConnection) -> int:
    async with held.driver() as driver:
        pid: int = await driver.fetchval("SELECT pg_backend_pid()")
    return pid


async def test_a_held_connection_the_server_closed_is_replaced_before_the_next_statement(runtime: Runtime) -> None:
    held = HeldConnection(runtime.database.engine, "test")
    try:
        async with held.driver() as driver:
            first_pid = await driver.fetchval("SELECT pg_backend_pid()")
        closed = asyncio.Event()
        driver.add_termination_listener(lambda _connection: closed.set())
        async with runtime.database.reading() as connection:
            await connection.exec_driver_sql(f"SELECT pg_terminate_backend({first_pid})")
        await closed.wait()  # the server's message and FIN arrive at a later turn of the event loop

        assert await _backend_pid(held) != first_pid
    finally:
        await held.close()


async def test_a_statement_s_own_error_keeps_the_held_connection(runtime: Runtime) -> None:
    held = HeldConnection(runtime.database.engine, "test")
    try:
        pid = await _backend_pid(held)
        with pytest.raises(DBAPIError) as raised:
            async with held.driver() as driver:
                await driver.fetchval("SELECT 1 / 0")

        assert isinstance(raised.value.orig, asyncpg.DivisionByZeroError)
        assert await _backend_pid(held) == pid
    finally:
        await held.close()


async def test_a_held_connection_cancelled_in_mid_statement_is_dropped_and_replaced(runtime: Runtime) -> None:
    held = HeldConnection(runtime.database.engine, "test")
    try:
        pid = await _backend_pid(held)

        async def sleeping() -> None:
            async with held.driver() as driver:
                await driver.execute("SELECT pg_sleep(30)")

        task = asyncio.create_task(sleeping())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        assert await _backend_pid(held) != pid
    finally:
        await held.close()
