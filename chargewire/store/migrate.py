"""Schema migrations with Alembic, run on the service's own async connection."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from chargewire.store.database import Database


def alembic_config() -> Config:
    """The Alembic configuration, pointing at the migrations shipped in the package."""
    config = Config()
    config.set_main_option("script_location", str(resources.files("chargewire.store") / "migrations"))
    return config


def _upgrade(connection: Connection, config: Config, revision: str) -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def upgrade(database: Database, revision: str = "head") -> None:
    """Bring the schema up to the newest migration (or to `revision`, which tests of a migration start from)."""
    config = alembic_config()
    async with database.transaction() as connection:
        await connection.run_sync(_upgrade, config, revision)


def _revision(connection: Connection, _: Any = None) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(database: Database) -> str | None:
    """The revision the database is at, or None before the first migration."""
    async with database.reading() as connection:
        return await connection.run_sync(_revision)


@functools.cache
def head_revision() -> str | None:
    """The newest revision shipped with this version of chargewire (read once: Alembic loads every script)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
