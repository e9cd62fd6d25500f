"""`chargewire events`: the event catalog, and validating or publishing payloads from files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from chargewire.cli.common import print_json, print_table, with_runtime
from chargewire.errors import ValidationFailed

if TYPE_CHECKING:
    from chargewire.runtime import Runtime

app = typer.Typer(help="The event catalog; validate and publish payloads.", no_args_is_help=True)


@app.command("list")
def list_events(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON with schemas and examples")] = False,
) -> None:
    """List every event type: name, deprecated, successor, (with --json) schema and example."""
    from chargewire.catalog import load_event_types

    event_types = load_event_types().values()
    if as_json:
        print_json(
            [
                {
                    "name": e.name,
                    "group": e.group,
                    "description": e.description,
                    "deprecated": e.deprecated,
                    "successors": list(e.successors),
                    "schema": e.schema,
                    "example": e.example,
                }
                for e in event_types
            ]
        )
        return
    print_table(
        ["NAME", "GROUP", "DEPRECATED", "SUCCESSOR"],
        [[e.name, e.group, "yes" if e.deprecated else "", ", ".join(e.successors)] for e in event_types],
    )


def _read_payloads(path: Path) -> list[object]:
    data = json.loads(path.read_text())
    return data if isinstance(data, list) else [data]


@app.command("validate")
def validate_file(
    path: Annotated[Path, typer.Argument(help="A JSON file: one payload or an array", exists=True)],
) -> None:
    """Check payloads against the catalog; prints each event name, or the errors by field path."""
    from chargewire.catalog import validate

    failed = False
    for index, payload in enumerate(_read_payloads(path)):
        try:
            typer.echo(f"[{index}] ok: {validate(payload)}")
        except ValidationFailed as failure:
            failed = True
            for field, messages in failure.errors.items():
                for message in messages:
                    typer.echo(f"[{index}] {field}: {message}", err=True)
    if failed:
        raise typer.Exit(1)


@app.command()
def publish(
    path: Annotated[Path, typer.Argument(help="A JSON file: one payload or an array", exists=True)],
) -> None:
    """Publish payloads from a file straight into the store (the same path as the ingest API)."""
    payloads = _read_payloads(path)

    async def action(runtime: Runtime) -> list[str]:
        return await runtime.publisher.publish(payloads)

    for event_id in with_runtime(action):
        typer.echo(event_id)


__all__ = ["app"]
