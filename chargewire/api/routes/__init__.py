"""HTTP routes, one module per resource."""

from fastapi import APIRouter

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

# In this order, after publishing (`events.install_publish`): a path two routers could match goes to the first.
ROUTERS: tuple[APIRouter, ...] = (
    event_types.router,
    notifications_v2.router,
    notifications_v1.router,
    notification_actions.router,
    subscription_secrets.router,
    deliveries.router,
    metrics.router,
    health.router,
)

install_publish = events.install_publish

__all__ = ["ROUTERS", "install_publish"]
