"""The FastAPI application: routes, error mapping, and the runtime it serves."""

from __future__ import annotations

from fastapi import FastAPI

from chargewire.api.docs import install_docs
from chargewire.api.errors import install_error_handlers
from chargewire.api.openapi_links import install_links
from chargewire.api.outage import DatabaseOutageMiddleware
from chargewire.api.rate_limit import Budgets, RateLimitMiddleware
from chargewire.api.request_guard import RequestGuardMiddleware
from chargewire.api.routes import (
    deliveries,
    event_types,
    events,
    health,
    metrics,
    notification_actions,
    notifications_v1,
    notifications_v2,
    subscription_secrets,
)
from chargewire.backoffice import PREFIX as BACKOFFICE_PREFIX
from chargewire.backoffice import create_backoffice
from chargewire.runtime import Runtime
from chargewire.version import __version__


def create_app(runtime: Runtime) -> FastAPI:
    """An app serving the ingest, catalog and notifications APIs on an open runtime."""
    app = FastAPI(
        title="chargewire",
        version=__version__,
        summary="Notifications for EV-charging back offices: signed webhooks and Kafka records.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    install_docs(app)
    install_links(app)
    app.include_router(events.router)
    app.include_router(event_types.router)
    app.include_router(notifications_v2.router)
    app.include_router(notifications_v1.router)
    app.include_router(notification_actions.router)
    app.include_router(subscription_secrets.router)
    app.include_router(deliveries.router)
    app.include_router(metrics.router)
    app.include_router(health.router)
    app.mount(BACKOFFICE_PREFIX, create_backoffice(runtime))
    settings = runtime.settings
    # Added last, so it runs first: a flood is counted before its bodies are read or its tokens looked up.
    app.add_middleware(RequestGuardMiddleware, settings=settings, tokens=runtime.tokens)
    budgets = Budgets(
        settings.api_rate_limit_per_minute,
        settings.ingest_rate_limit_per_minute,
        settings.outgoing_rate_limit_per_minute,
    )
    app.add_middleware(RateLimitMiddleware, budgets=budgets)
    app.add_middleware(DatabaseOutageMiddleware)  # outermost: it bounds everything inside
    return app
