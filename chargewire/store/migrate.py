"""Schema migrations with Alembic, run on the service's own async connection."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
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
