"""`chargewire db`: schema migrations and storage statistics."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import typer

from chargewire.cli.common import load_settings, print_table, run

if TYPE_CHECKING:
    from chargewire.services.storage import ExpiryRun, StorageReport
    from chargewire.store.database import Database

app = typer.Typer(help="Database schema and storage.", no_args_is_help=True)


@contextlib.asynccontextmanager
async def _database() -> AsyncIterator[Database]:
    """The database at CHARGEWIRE_DATABASE_URL, closed when the block ends."""
    from chargewire.store.database import create_database

    database = create_database(load_settings().effective_database_url)
    try:
        yield database
    finally:
        await database.aclose()


@app.command()
def upgrade() -> None:
    """Migrate the database at CHARGEWIRE_DATABASE_URL to the newest schema."""
    from chargewire.store import migrate
    from chargewire.store.schema_revision import current_revision

    async def main() -> str | None:
        async with _database() as database:
            await migrate.upgrade(database)
            return await current_revision(database)

    typer.echo(f"schema at revision {run(main())}")


@app.command()
def current() -> None:
    """Print the schema revision of the database and the newest one this version ships."""
    from chargewire.store.schema_revision import current_revision, head_revision

    async def main() -> str | None:
        async with _database() as database:
            return await current_revision(database)

    typer.echo(f"database: {run(main()) or 'empty'}\nnewest:   {head_revision()}")


@app.command()
def stats() -> None:
    """Print each table's size, rows and oldest row (measured now) and what the last expiry run did."""
    from chargewire.services.storage import StorageService
    from chargewire.store.retention import RetentionStore

    async def main() -> StorageReport:
        async with _database() as database:
            return await StorageService(RetentionStore(database)).measure_now()

    report = run(main())
    rows = [
        [
            size.table,
            "" if size.partition == size.table else size.partition,
            f"{size.bytes / 1024:,.0f} kB",
            "-" if size.rows is None else str(size.rows),
            "" if size.oldest is None else size.oldest.isoformat(timespec="seconds"),
        ]
        for size in report.tables
    ]
    print_table(["table", "partition", "size", "rows", "oldest row"], rows)
    typer.echo(f"\n{_last_run_line(report.last_run)}")


def _last_run_line(last: ExpiryRun) -> str:
    if last.started_at is None or last.finished_at is None:
        return "last expiry run: none yet"
    removed = ", ".join(f"{count} {table}" for table, count in last.removed.items()) or "nothing"
    took_s = (last.finished_at - last.started_at).total_seconds()
    outcome = f"error: {last.error}" if last.error else "ok"
    started = last.started_at.isoformat(timespec="seconds")
    return f"last expiry run: {started} ({took_s:.1f} s), removed {removed}; {outcome}"
