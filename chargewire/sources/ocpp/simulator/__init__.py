"""Simulated OCPP charge points (1.6J and 2.0.1, on the `ocpp` package) for tests, the demo and benchmarks."""

from chargewire.sources.ocpp.simulator.behaviour import Behaviour
from chargewire.sources.ocpp.simulator.fleet import Fleet, FleetOptions
from chargewire.sources.ocpp.simulator.station import Tally

__all__ = ["Behaviour", "Fleet", "FleetOptions", "Tally"]
