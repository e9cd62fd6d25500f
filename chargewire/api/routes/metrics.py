"""Prometheus metrics at `/metrics`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from chargewire.api.auth import runtime_of

router = APIRouter(tags=["operations"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Deliveries by outcome, attempt duration, publish-to-delivery latency and queue depth."""
    runtime = runtime_of(request)
    return Response(await runtime.metrics.render(runtime.delivery_store), media_type=CONTENT_TYPE_LATEST)
