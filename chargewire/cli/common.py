"""What every CLI command shares: settings, running a coroutine, printing results and errors."""

from __future__ import annotations

import gc
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from chargewire.errors import ChargewireError, ValidationFailed

if TYPE_CHECKING:
    from chargewire.config import Settings
    from chargewire.runtime import Runtime

T = TypeVar("T")


def configure_logging() -> None:
    """Log INFO and above to standard error with times, for the long-running commands."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


_YOUNG_COLLECTION_ALLOCATIONS = 100_000


def freeze_startup_objects() -> None:
    """Move what start-up made (modules, schemas, the app) out of the garbage collector's sight.

    Full collections walked those ~120,000 long-lived objects again and again: 6-10 µs of every ingested
    event. Objects made later are collected as before, the youngest after 100,000 allocations rather than
    Python's 700: a Kafka worker allocates a few dozen objects per record and keeps thousands of records in
    flight, so a young collection mostly walks objects that are still in use. Python's 700 cost it about 5
    of its 40 µs per record on the event loop, and 10,000 still about 4 more than 100,000 (drains of 100,000
    records, back to back).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(_YOUNG_COLLECTION_ALLOCATIONS)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop; chargewire errors end the command with a message and exit code 1.

    uvloop: the HTTP client and server do about 1.6 times the work per core on it (docs/decisions/0001).
    """
    import uvloop

    try:
        return uvloop.run(coroutine)
    except ValidationFailed as failure:
        # Each field's message is the error itself: the summary would repeat the first of them.
        lines = [f"{field}: {message}" for field, messages in failure.errors.items() for message in messages]
        for line in lines or [failure.message]:
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(1) from None
    except ChargewireError as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(1) from None


def load_settings() -> Settings:
    """The settings from the environment and the config file."""
    from chargewire.config import Settings

    return Settings()


def with_runtime(action: Callable[[Runtime], Awaitable[T]], settings: Settings | None = None) -> T:
    """Open the runtime from the environment, run `action` on it, close it."""
    from chargewire.runtime import Runtime

    async def main() -> T:
        async with await Runtime.open(settings or load_settings()) as runtime:
            return await action(runtime)

    return run(main())


def print_json(data: Any) -> None:
    """Print data as indented JSON on standard output."""
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """Print rows as aligned columns."""
    widths = [max([len(header), *(len(row[i]) for row in rows)]) for i, header in enumerate(headers)]
    for row in [headers, *rows]:
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
