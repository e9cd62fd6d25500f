"""The migrations build exactly the schema that the code's tables describe, on both backends."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection

from chargewire.runtime import Runtime
from chargewire.store import migrate
from chargewire.store.dialects.postgresql_partitions import PARTITION_NAME
from chargewire.store.schema_revision import current_revision, head_revision
from chargewire.store.tables import metadata


def _not_a_partition(name: str | None, type_: str, _parents: object) -> bool:
    """The service makes and drops PostgreSQL's day partitions at run time: the schema names their parents only."""
    return not (type_ == "table" and name is not None and PARTITION_NAME.match(name))


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": _not_a_partition})
    return list(compare_metadata(context, metadata))


async def test_migrated_schema_matches_the_tables(runtime: Runtime) -> None:
    async with runtime.database.reading() as connection:
        assert await connection.run_sync(_differences) == []


async def test_database_is_at_the_newest_revision(runtime: Runtime) -> None:
    assert await current_revision(runtime.database) == head_revision()


async def test_upgrading_twice_changes_nothing(runtime: Runtime) -> None:
    await migrate.upgrade(runtime.database)
    assert await current_revision(runtime.database) == head_revision()
