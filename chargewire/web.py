"""The served application: the API's routes and the back office under one ASGI app, behind the request middlewares.

The API and the back office each bring their own routes and error mapping; this module alone knows both and
decides the order the middlewares run in, which covers every request to either.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from fastapi.telemetry import TelemetryConfig
from starlette.middleware import Middleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp

from chargewire.api import (
    ROUTERS,
    Budgets,
    RequestLayer,
    install_docs,
    install_error_handlers,
    install_links,
    install_publish,
)
from chargewire.backoffice import PREFIX as BACKOFFICE_PREFIX
from chargewire.backoffice import create_backoffice
from chargewire.runtime import Runtime
from chargewire.version import __version__

__all__ = ["create_app"]

# chargewire exports no OpenTelemetry data; off, FastAPI no longer asks the three global OpenTelemetry providers
# (and the environment) on every request whether they were configured (bench.http_ingress).
_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


class _App(FastAPI):
    """FastAPI with its native telemetry off and without the two layers it wraps every request in for it and for
    its own body limit.

    FastAPI puts `ExceptionTelemetryMiddleware` (which notes exceptions for the telemetry) and
    `AppBodyLimitMiddleware` (its `max_body_size`, which chargewire leaves unset: the request guard applies the
    body limits) between Starlette's last-resort error handler and the app's middlewares. Off and unset, both
    pass every request on untouched, at a call and an `await` each. The stack here is FastAPI's without them:
    Starlette's error handlers around the app's middlewares, and FastAPI's exit stack for uploaded files inside.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(telemetry=_NO_TELEMETRY, **options)

    def build_middleware_stack(self) -> ASGIApp:
        """The request layers around the router, outermost first, as FastAPI orders them."""
        if self.max_body_size is not None:
            return super().build_middleware_stack()
        last_resort = [handler for key, handler in self.exception_handlers.items() if key in (500, Exception)]
        handlers = {key: handler for key, handler in self.exception_handlers.items() if key not in (500, Exception)}
        layers = [
            Middleware(ServerErrorMiddleware, handler=last_resort[-1] if last_resort else None, debug=self.debug),
            *self.user_middleware,
            Middleware(ExceptionMiddleware, handlers=handlers, debug=self.debug),
            Middleware(AsyncExitStackMiddleware),
        ]
        app: ASGIApp = self.router
        for cls, args, kwargs in reversed(layers):
            app = cls(app, *args, **kwargs)
        return app


def create_app(runtime: Runtime) -> FastAPI:
    """An app serving the ingest, catalog and notifications APIs and the back office on an open runtime."""
    app = _App(
        title="chargewire",
        version=__version__,
        summary="Notifications for EV-charging back offices: signed webhooks and Kafka records.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    install_publish(app)  # first: the route of nearly every request
    install_docs(app)
    install_links(app)
    for router in ROUTERS:
        app.include_router(router)
    app.mount(BACKOFFICE_PREFIX, create_backoffice(runtime))
    _install_middlewares(app, runtime)
    return app


def _install_middlewares(app: FastAPI, runtime: Runtime) -> None:
    """The outage deadline, rate limits and request guard, in one layer around the API and the back office alike."""
    settings = runtime.settings
    budgets = Budgets(
        settings.api_rate_limit_per_minute,
        settings.ingest_rate_limit_per_minute,
        settings.outgoing_rate_limit_per_minute,
    )
    app.add_middleware(RequestLayer, settings=settings, tokens=runtime.tokens, budgets=budgets)
