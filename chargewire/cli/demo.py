"""`chargewire demo`: everything running at once on the embedded SQLite default."""

from __future__ import annotations

import contextlib
import logging
from typing import Annotated

import typer

from chargewire.cli.common import load_settings, run


def demo(
    port: Annotated[int, typer.Option(help="Port for the API")] = 8000,
    charge_points: Annotated[int, typer.Option(help="Simulated charge points publishing through the API")] = 25,
    rate: Annotated[int, typer.Option(help="Events published per second through the API")] = 50,
    ocpp_charge_points: Annotated[
        int, typer.Option(help="Simulated OCPP charge points connected through the tap to a dev CSMS (0: none)")
    ] = 10,
    meter_interval: Annotated[float, typer.Option(help="Seconds between the OCPP charge points' steps")] = 2.0,
    failure_rate: Annotated[float, typer.Option(help="Share of requests the sample receiver refuses (503)")] = 0.05,
) -> None:
    """Run the service, a sample receiver, and simulated charge points (through the OCPP tap and the API)."""
    import asyncio

    from chargewire.demo import DemoOptions, OcppFlowOptions, run_demo

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = DemoOptions(
        port=port,
        charge_points=charge_points,
        events_per_second=rate,
        failure_rate=failure_rate,
        ocpp=OcppFlowOptions(charge_points=ocpp_charge_points, meter_interval_s=meter_interval),
    )
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        run(run_demo(load_settings(), options))
