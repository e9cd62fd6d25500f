"""`chargewire ocpp`: the OCPP tap in front of a CSMS, and the charge points it has seen."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Annotated

import typer

from chargewire.cli.common import configure_logging, freeze_startup_objects, print_table, run, with_runtime
from chargewire.config import Settings
from chargewire.runtime import Runtime
from chargewire.sources.ocpp import list_charge_points, run_tap

logger = logging.getLogger(__name__)
app = typer.Typer(help="The OCPP tap: notifications from live charge point traffic.", no_args_is_help=True)


async def tap_until_stopped(settings: Settings) -> None:
    """Run the tap alone (no API, no delivery) until SIGINT or SIGTERM."""
    async with await Runtime.open(settings) as runtime:
        freeze_startup_objects()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_tap(settings, runtime.publisher, runtime.database, stop, runtime.metrics.registry)


def tap_task(runtime: Runtime, stop: asyncio.Event) -> asyncio.Task[None] | None:
    """The tap as a task of `chargewire serve`, when the settings name both its address and its upstream."""
    settings = runtime.settings
    if not (settings.ocpp_listen and settings.ocpp_upstream):
        return None
    # `serve` watches it beside the API and the worker: if it ends by itself, so does the process.
    return asyncio.create_task(
        run_tap(settings, runtime.publisher, runtime.database, stop, runtime.metrics.registry), name="ocpp-tap"
    )


@app.command()
def serve(
    listen: Annotated[str | None, typer.Option(help="HOST:PORT for charge points (CHARGEWIRE_OCPP_LISTEN)")] = None,
    upstream: Annotated[
        str | None, typer.Option(help="The CSMS's ws(s):// URL, e.g. ws://csms:9000/ocpp/ (CHARGEWIRE_OCPP_UPSTREAM)")
    ] = None,
) -> None:
    """Relay charge points to the CSMS unchanged and publish the events their traffic shows."""
    configure_logging()
    settings = Settings()
    overrides = {"ocpp_listen": listen, "ocpp_upstream": upstream}
    settings = settings.model_copy(update={key: value for key, value in overrides.items() if value is not None})
    run(tap_until_stopped(settings))


@app.command("charge-points")
def charge_points() -> None:
    """List the identities the taps have seen, from the database: ids, OCPP version, connection state, last message."""
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
