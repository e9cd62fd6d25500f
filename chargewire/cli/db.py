"""`chargewire db`: schema migrations."""

from __future__ import annotations

import typer

from chargewire.cli.common import run
from chargewire.config import Settings
from chargewire.store import migrate
from chargewire.store.database import create_database

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command()
def upgrade() -> None:
    """Migrate the database at CHARGEWIRE_DATABASE_URL to the newest schema."""

    async def main() -> str | None:
        database = create_database(Settings().effective_database_url)
        try:
            await migrate.upgrade(database)
            return await migrate.current_revision(database)
        finally:
            await database.aclose()

    typer.echo(f"schema at revision {run(main())}")


@app.command()
def current() -> None:
    """Print the schema revision of the database and the newest one this version ships."""

    async def main() -> str | None:
        database = create_database(Settings().effective_database_url)
        try:
            return await migrate.current_revision(database)
        finally:
            await database.aclose()

    typer.echo(f"database: {run(main()) or 'empty'}\nnewest:   {migrate.head_revision()}")
