"""Where events come from besides the ingest API: simulated charge points, and the OCPP tap (`sources.ocpp`)."""

from chargewire.sources.simulator import ChargingNetwork, SimulatedChargePoint

__all__ = ["ChargingNetwork", "SimulatedChargePoint"]
