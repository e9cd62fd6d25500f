"""The demo: the service, a sample receiver, simulated charge points (OCPP tap and API), a live table."""

from chargewire.demo.ocpp_flow import OcppFlowOptions
from chargewire.demo.runner import DemoOptions, demo_token, run_demo

__all__ = ["DemoOptions", "OcppFlowOptions", "demo_token", "run_demo"]
