"""Prometheus metrics at `/metrics`, for tokens with `metrics:read` (or `admin`) unless made public."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from chargewire.api.auth import bearer_text, runtime_of
from chargewire.errors import PermissionDenied
from chargewire.models import Scope

router = APIRouter(tags=["operations"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Deliveries by outcome, attempt duration, publish-to-delivery latency and queue depth."""
    runtime = runtime_of(request)
    if not runtime.settings.metrics_public:
        # Queue depths and failure counts describe every tenant's traffic: not for anyone who can reach the port.
        token = await runtime.tokens.authenticate(bearer_text(request))
        if not token.allows(Scope.METRICS_READ):
            raise PermissionDenied()
    return Response(await runtime.metrics.render(runtime.delivery_store), media_type=CONTENT_TYPE_LATEST)
