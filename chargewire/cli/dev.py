"""`chargewire dev`: tools for trying chargewire locally."""

from __future__ import annotations

from typing import Annotated

import typer

from chargewire.cli.common import configure_logging, run

app = typer.Typer(help="Local development tools.", no_args_is_help=True)


@app.command()
def kafka() -> None:
    """Start a real single-node Kafka broker (jars from Maven Central); print its addresses and credentials."""
    from chargewire.devtools import kafka_broker

    kafka_broker.main()


@app.command()
def csms(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 9000,
) -> None:
    """Run a small CSMS that accepts every charge point and answers every call (to try the OCPP tap)."""
    from chargewire.devtools.csms import run_dev_csms

    configure_logging()
    run(run_dev_csms(host, port))
