"""The demo's OCPP flow: simulated charge points connect through the tap to a dev CSMS, all on loopback.

The dev CSMS and the tap listen on free loopback ports chosen at start, so the demo needs no network and no
free port of its own beyond the API's. The tap publishes in-process through the runtime's durable publish
path, as inside `chargewire serve`, so what the charge points cause reaches the sample receiver and the back
office like any published event.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from websockets.asyncio.server import Server

from chargewire.config import Settings
from chargewire.devtools.csms import DevCsms, first_id_from_clock
from chargewire.devtools.postgres import free_port
from chargewire.runtime import Runtime
from chargewire.sources.ocpp import TapAddress, run_tap

if TYPE_CHECKING:
    from chargewire.sources.ocpp.simulator import Fleet

IDENTITY_PREFIX = "DEMO-"
# Meters run 30 times faster than the clock: a session of a minute or two shows the energy of half an hour.
_SPEEDUP = 30.0
_LISTEN_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class OcppFlowOptions:
    """How many simulated charge points the demo runs, and how often each does something."""

    charge_points: int = 10
    meter_interval_s: float = 2.0


async def start_dev_csms() -> Server:
    """The dev CSMS on a free loopback port (see the server's sockets)."""
    # Transaction ids from the clock: a demo started again never gives an id the tap's kept registry saw.
    csms = DevCsms(record=False, first_transaction_id=first_id_from_clock())
    return await csms.start("127.0.0.1", 0)


def with_tap(settings: Settings, csms: Server) -> Settings:
    """`settings` with the tap on a free loopback port in front of `csms`."""
    csms_port = csms.sockets[0].getsockname()[1]
    return settings.model_copy(
        update={
            "ocpp_listen": f"127.0.0.1:{free_port()}",
            "ocpp_upstream": f"ws://127.0.0.1:{csms_port}/ocpp/",
        }
    )


def tap_url(settings: Settings) -> str:
    """Where charge points connect to the tap (an identity follows)."""
    address = TapAddress.parse(settings.ocpp_listen)
    return f"ws://{address.host}:{address.port}/ocpp/"


def demo_fleet(settings: Settings, options: OcppFlowOptions) -> Fleet:
    """The demo's simulated charge points, both OCPP versions, connecting to the tap."""
    # Loaded here, not with the CLI: the ocpp package and its schema checks cost every command ~0.1 s to import.
    from chargewire.sources.ocpp.simulator import Behaviour, Fleet, FleetOptions

    # Security events and data transfers a few times a minute, so that a first look sees them too.
    behaviour = Behaviour(
        meter_interval_s=options.meter_interval_s,
        speedup=_SPEEDUP,
        security_event_chance=0.01,
        data_transfer_chance=0.02,
    )
    return Fleet(
        FleetOptions(
            url=tap_url(settings),
            charge_points=options.charge_points,
            identity_prefix=IDENTITY_PREFIX,
            behaviour=behaviour,
        )
    )


async def run_ocpp_flow(runtime: Runtime, fleet: Fleet, stop: asyncio.Event) -> None:
    """Run the tap and, once it listens, the charge points, until `stop` is set."""
    settings = runtime.settings
    tap = asyncio.create_task(
        run_tap(settings, runtime.publisher, runtime.database, stop, runtime.metrics.registry), name="ocpp-tap"
    )
    try:
        await _wait_listening(TapAddress.parse(settings.ocpp_listen), tap)
        await fleet.run(stop)
    except BaseException:
        tap.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tap
        raise
    await tap


async def _wait_listening(address: TapAddress, tap: asyncio.Task[None]) -> None:
    deadline = asyncio.get_running_loop().time() + _LISTEN_TIMEOUT_S
    while asyncio.get_running_loop().time() < deadline:
        if tap.done():
            tap.result()
            return
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection(address.host, address.port)
            writer.close()
            await writer.wait_closed()
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"the OCPP tap did not listen on {address.host}:{address.port}")
