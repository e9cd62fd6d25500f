"""chargewire: delivers EV-charging back-office events to subscribers as signed webhooks and Kafka records.

The root stays light: `publish` and `aclose_default_runtime` load the service's runtime on first use, so
`import chargewire.receiver` (what subscribers use) does not pull in FastAPI, SQLAlchemy or Kafka.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chargewire.version import __version__

if TYPE_CHECKING:
    from chargewire.publishing import aclose_default_runtime, publish

_ON_DEMAND = {"publish", "aclose_default_runtime"}

__all__ = ["__version__", "aclose_default_runtime", "publish"]


def __getattr__(name: str) -> Any:
    """Load the publishing runtime when one of its names is first asked for."""
    if name in _ON_DEMAND:
        from chargewire import publishing

        return getattr(publishing, name)
    raise AttributeError(f"module 'chargewire' has no attribute {name!r}")
