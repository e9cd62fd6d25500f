"""A fleet of simulated charge points connected to one URL (the tap, or a CSMS directly), run until stopped."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from chargewire.errors import ConfigurationError
from chargewire.sources.ocpp.simulator.behaviour import Behaviour
from chargewire.sources.ocpp.simulator.dialect import Dialect
from chargewire.sources.ocpp.simulator.station import Station, Tally
from chargewire.sources.ocpp.simulator.v16 import Ocpp16
from chargewire.sources.ocpp.simulator.v201 import Ocpp201

DIALECTS: dict[str, Callable[[str, random.Random], Dialect]] = {"1.6": Ocpp16, "2.0.1": Ocpp201}


@dataclass(frozen=True)
class FleetOptions:
    """Which charge points to simulate and where they connect."""

    url: str
    charge_points: int = 10
    versions: Sequence[str] = ("1.6", "2.0.1")
    identity_prefix: str = "SIM-"
    # Sent as basic auth with each identity as the user name (security profiles 1 and 2), when given.
    password: str | None = None
    seed: int = 7
    behaviour: Behaviour = field(default_factory=Behaviour)

    def __post_init__(self) -> None:
        unknown = [version for version in self.versions if version not in DIALECTS]
        if unknown or not self.versions:
            raise ConfigurationError(f"OCPP versions must be among {', '.join(DIALECTS)}, not {unknown}.")
        if self.behaviour.connectors < 1:
            raise ConfigurationError("A simulated charge point needs at least one connector.")
        if not self.url.startswith(("ws://", "wss://")):
            raise ConfigurationError(f"The charge points connect to a ws:// or wss:// URL, not {self.url!r}.")


class Fleet:
    """The charge points of `options`: the versions alternate, `<prefix><n>` is each one's identity."""

    def __init__(self, options: FleetOptions) -> None:
        self.options = options
        self.tally = Tally()
        base = options.url if options.url.endswith("/") else f"{options.url}/"
        self.stations = [self._station(base, index) for index in range(options.charge_points)]

    def _station(self, base: str, index: int) -> Station:
        options = self.options
        rng = random.Random(options.seed * 1_000_003 + index)
        identity = f"{options.identity_prefix}{index + 1:04d}"
        dialect = DIALECTS[options.versions[index % len(options.versions)]](identity, rng)
        return Station(f"{base}{identity}", dialect, options.behaviour, rng, self.tally, options.password)

    async def run(self, stop: asyncio.Event) -> None:
        """Run every charge point until `stop` is set, then close their connections."""
        async with asyncio.TaskGroup() as group:
            for station in self.stations:
                group.create_task(station.run(stop))

    def summary(self) -> str:
        """One line saying what the fleet has done so far."""
        tally = self.tally
        return (
            f"{tally.connected}/{len(self.stations)} connected, {tally.calls} calls "
            f"({tally.refused_calls} refused), {tally.sessions_started} sessions started, "
            f"{tally.sessions_stopped} stopped, {tally.connections} connections "
            f"({tally.refused_connections} failed)"
        )
