"""The HTTP API: its routes, JSON error mapping, documentation page and request middlewares.

`chargewire.web` assembles them, with the back office, into the application that is served.
"""

from chargewire.api.docs import install_docs
from chargewire.api.errors import install_error_handlers
from chargewire.api.openapi_links import install_links
from chargewire.api.rate_limit import Budgets
from chargewire.api.request_layer import RequestLayer
from chargewire.api.routes import ROUTERS, install_publish

__all__ = [
    "ROUTERS",
    "Budgets",
    "RequestLayer",
    "install_docs",
    "install_error_handlers",
    "install_links",
    "install_publish",
]
