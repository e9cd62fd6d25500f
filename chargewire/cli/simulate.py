"""`chargewire simulate`: simulated OCPP charge points against the tap (or a CSMS), until Ctrl-C or a duration."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Annotated

import typer

from chargewire.cli.common import configure_logging, run

if TYPE_CHECKING:
    from chargewire.sources.ocpp.simulator import FleetOptions

logger = logging.getLogger(__name__)
_SUMMARY_EVERY_S = 10.0


async def simulate_until_stopped(options: FleetOptions, duration_s: float | None) -> None:
    """Run a fleet until SIGINT, SIGTERM or `duration_s`, logging what it did every 10 s and at the end."""
    import asyncio
    import signal

    from chargewire.sources.ocpp.simulator import Fleet

    fleet = Fleet(options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if duration_s is not None:
        loop.call_later(duration_s, stop.set)
    running = asyncio.create_task(fleet.run(stop))
    while not running.done():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(running), _SUMMARY_EVERY_S)
        logger.info("simulator: %s", fleet.summary())
    running.result()


def simulate(
    url: Annotated[str, typer.Option(help="Where charge points connect: the tap's ws://HOST:PORT/ocpp/ or a CSMS's")],
    charge_points: Annotated[int, typer.Option(help="How many charge points")] = 10,
    versions: Annotated[str, typer.Option(help="OCPP versions, alternating between charge points")] = "1.6,2.0.1",
    meter_interval: Annotated[float, typer.Option(help="Seconds between meter values (and every other step)")] = 10.0,
    speedup: Annotated[
        float, typer.Option(help="Meters run this many times faster than the clock (bigger sessions sooner)")
    ] = 1.0,
    heartbeat_interval: Annotated[
        float | None, typer.Option(help="Seconds between heartbeats (default: what the CSMS's boot answer says)")
    ] = None,
    connectors: Annotated[int, typer.Option(help="Connectors (EVSEs) per charge point")] = 2,
    identity_prefix: Annotated[str, typer.Option(help="Identities are this prefix and a number")] = "SIM-",
    password: Annotated[
        str | None, typer.Option(help="Basic auth password (user: each identity), for security profiles 1 and 2")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of every random choice, for a run that repeats")] = 7,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds (default: Ctrl-C)")] = None,
) -> None:
    """Connect simulated charge points that boot, charge, report meter values, fault and reconnect."""
    from chargewire.sources.ocpp.simulator import Behaviour, FleetOptions

    configure_logging()
    behaviour = Behaviour(meter_interval_s=meter_interval, speedup=speedup, heartbeat_interval_s=heartbeat_interval)
    options = partial(
        FleetOptions,
        url=url,
        charge_points=charge_points,
        versions=tuple(version.strip() for version in versions.split(",") if version.strip()),
        identity_prefix=identity_prefix,
        password=password,
        seed=seed,
        behaviour=behaviour,
    )
    run(_checked(options, duration))


async def _checked(options: Callable[[], FleetOptions], duration_s: float | None) -> None:
    """Check the options inside `run`, so that a wrong one ends the command with its message."""
    await simulate_until_stopped(options(), duration_s)
