"""`/healthz` (the process is alive) and `/readyz` (it can do its work: database, schema, delivery loops)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from chargewire.api.auth import runtime_of

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> JSONResponse:
    """The process is alive and its event loop answers; asks nothing of the database."""
    return JSONResponse({"status": "ok"})


@router.get("/readyz", summary="Readiness")
async def readyz(request: Request) -> JSONResponse:
    """200 when the database takes writes, the schema is current and the delivery loops run; 503 naming the
    check that failed otherwise. Answered within a few seconds whatever the database does."""
    readiness = await runtime_of(request).health_checks.readiness()
    body = {
        "status": "ready" if readiness.ready else "unavailable",
        "checks": {check.name: {"ok": check.ok, "detail": check.detail} for check in readiness.checks},
    }
    return JSONResponse(body, status_code=200 if readiness.ready else 503)
