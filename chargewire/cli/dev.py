"""`chargewire dev`: tools for trying chargewire locally."""

from __future__ import annotations

import typer

from chargewire.devtools import kafka_broker

app = typer.Typer(help="Local development tools.", no_args_is_help=True)


@app.command()
def kafka() -> None:
    """Start a real single-node Kafka broker (jars from Maven Central); print its addresses and credentials."""
    kafka_broker.main()
