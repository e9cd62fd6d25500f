"""`chargewire db`: schema migrations and storage statistics."""

from __future__ import annotations

import typer

from chargewire.cli.common import print_table, run
from chargewire.config import Settings
from chargewire.services.storage import ExpiryRun, StorageReport, StorageService
from chargewire.store import migrate
from chargewire.store.database import create_database
from chargewire.store.retention import RetentionStore

app = typer.Typer(help="Database schema and storage.", no_args_is_help=True)


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


@app.command()
def stats() -> None:
    """Print each table's size, rows and oldest row (measured now) and what the last expiry run did."""

    async def main() -> StorageReport:
        database = create_database(Settings().effective_database_url)
        try:
            return await StorageService(RetentionStore(database)).measure_now()
        finally:
            await database.aclose()

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
