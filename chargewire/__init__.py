"""chargewire: delivers EV-charging back-office events to subscribers as signed webhooks and Kafka records."""

__version__ = "0.1.0"

from chargewire.publishing import aclose_default_runtime, publish

__all__ = ["__version__", "aclose_default_runtime", "publish"]
