"""PostgreSQL's pooled connections: checked on checkout only when closed or idle, so a busy pool costs no pings."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from chargewire.devtools.postgres import PostgresCluster
from chargewire.store.database import Database, create_database
from chargewire.store.dialects.postgresql_pool import check_idle_connections

_numbers = itertools.count()
# SQLAlchemy's asyncpg ping runs an empty query in a transaction of its own, which it rolls back; the query logger
# sees that transaction's statements.
_PING_END = "ROLLBACK;"


@pytest.fixture
async def database(postgres_cluster: PostgresCluster) -> AsyncIterator[Database]:
    database = create_database(postgres_cluster.create_database(f"pool_{next(_numbers)}"))
    yield database
    await database.aclose()


async def _driver(database: Database) -> Any:
    """The asyncpg connection the pool hands out next (the pool holds just one)."""
    async with database.reading() as connection:
        return (await connection.get_raw_connection()).driver_connection


def _logging_queries(driver: Any) -> list[str]:
    queries: list[str] = []
    driver.add_query_logger(lambda record: queries.append(record.query))
    return queries


async def _backend_pid(database: Database) -> int:
    async with database.transaction() as connection:
        return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_connection_back_in_the_pool_moments_ago_is_used_without_a_ping(database: Database) -> None:
    queries = _logging_queries(await _driver(database))

    await _backend_pid(database)
    await _backend_pid(database)

    assert queries == ["BEGIN;", "COMMIT;"] * 2


async def test_a_pooled_connection_the_server_ended_is_replaced_on_checkout(
    database: Database, postgres_cluster: PostgresCluster
) -> None:
    driver = await _driver(database)
    ended = await _backend_pid(database)
    postgres_cluster.psql(f"SELECT pg_terminate_backend({ended})")
    for _ in range(200):  # until asyncpg has read the server's goodbye; a bound, not a timing assumption
        if driver.is_closed():
            break
        await asyncio.sleep(0.01)

    assert await _backend_pid(database) != ended


async def test_a_connection_idle_past_the_window_is_pinged_on_checkout(postgres_cluster: PostgresCluster) -> None:
    engine = create_async_engine(postgres_cluster.url("postgres"))
    check_idle_connections(engine, idle_check_s=0.0)
    try:
        async with engine.connect() as connection:
            queries = _logging_queries((await connection.get_raw_connection()).driver_connection)
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()

    assert _PING_END in queries
