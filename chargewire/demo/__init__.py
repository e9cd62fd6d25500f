"""The demo: the service, a sample receiver and simulated charge points, with a live table."""

from chargewire.demo.runner import DemoOptions, demo_token, run_demo

__all__ = ["DemoOptions", "demo_token", "run_demo"]
