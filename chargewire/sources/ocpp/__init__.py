"""The OCPP tap: a transparent OCPP-J proxy in front of a CSMS that publishes the events it observes."""

from chargewire.sources.ocpp.charge_points import list_charge_points
from chargewire.sources.ocpp.registry import ChargePointRecord, Registry
from chargewire.sources.ocpp.tap import TapAddress, run_tap

__all__ = ["ChargePointRecord", "Registry", "TapAddress", "list_charge_points", "run_tap"]
