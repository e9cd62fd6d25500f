"""`chargewire ocpp`: the OCPP tap in front of a CSMS, and the charge points it has seen."""

from __future__ import annotations

from typing import Annotated

import typer

from chargewire.cli.common import configure_logging, load_settings, print_table, run, with_runtime

app = typer.Typer(help="The OCPP tap: notifications from live charge point traffic.", no_args_is_help=True)


@app.command()
def serve(
    listen: Annotated[str | None, typer.Option(help="HOST:PORT for charge points (CHARGEWIRE_OCPP_LISTEN)")] = None,
    upstream: Annotated[
        str | None, typer.Option(help="The CSMS's ws(s):// URL, e.g. ws://csms:9000/ocpp/ (CHARGEWIRE_OCPP_UPSTREAM)")
    ] = None,
) -> None:
    """Relay charge points to the CSMS unchanged and publish the events their traffic shows."""
    from chargewire.cli import serving

    configure_logging()
    settings = load_settings()
    overrides = {"ocpp_listen": listen, "ocpp_upstream": upstream}
    settings = settings.model_copy(update={key: value for key, value in overrides.items() if value is not None})
    run(serving.tap_until_stopped(settings))


@app.command("charge-points")
def charge_points() -> None:
    """List the identities the taps have seen, from the database: ids, OCPP version, connection state, last message."""
    from chargewire.sources.ocpp import list_charge_points

    records = with_runtime(lambda runtime: list_charge_points(runtime.database))
    print_table(
        ["IDENTITY", "ID", "VERSION", "STATE", "SINCE", "LAST MESSAGE"],
        [
            [
                record.identity,
                str(record.charge_point_id),
                record.version or "-",
                "connected" if record.connected else "disconnected",
                record.changed_at.isoformat(),
                record.last_message_at.isoformat() if record.last_message_at else "-",
            ]
            for record in records
        ],
    )
