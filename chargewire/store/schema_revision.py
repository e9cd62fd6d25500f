"""Which schema revision a database is at and which one this version ships, read without loading Alembic.

Every command that opens the service checks the two match; Alembic (~0.4 s to import, and it reads every
migration script) is loaded only by `chargewire.store.migrate`, which changes the schema. The revision table is
Alembic's; each migration's file name starts with its revision (tests/unit/store/test_schema_revision.py).
"""

from __future__ import annotations

import functools
from importlib import resources

from sqlalchemy import Connection, column, inspect, select, table

from chargewire.store.database import Database

_VERSION_TABLE = table("alembic_version", column("version_num"))


def _revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table(_VERSION_TABLE.name):
        return None
    revision: str | None = connection.execute(select(_VERSION_TABLE.c.version_num)).scalar_one_or_none()
    return revision


async def current_revision(database: Database) -> str | None:
    """The revision the database is at, or None before the first migration."""
    async with database.reading() as connection:
        return await connection.run_sync(_revision)


@functools.cache
def head_revision() -> str:
    """The newest revision shipped with this version of chargewire: the highest migration file's prefix."""
    versions = resources.files("chargewire.store") / "migrations" / "versions"
    return max(entry.name.split("_", 1)[0] for entry in versions.iterdir() if entry.name[:1].isdigit())
