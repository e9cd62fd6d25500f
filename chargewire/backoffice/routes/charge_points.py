"""The charge points the OCPP tap has seen: identity, ids, OCPP version, connection state, last message."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from chargewire.backoffice.guards import Operator, runtime_of
from chargewire.backoffice.rendering import render
from chargewire.sources.ocpp import list_charge_points

router = APIRouter()


@router.get("/charge-points")
async def charge_points_page(request: Request, _: Operator) -> Response:
    """Every identity in the taps' registry, as `chargewire ocpp charge-points` lists them."""
    runtime = runtime_of(request)
    settings = runtime.settings
    return render(
        request,
        "charge_points.html",
        charge_points=await list_charge_points(runtime.database),
        tap_configured=bool(settings.ocpp_listen and settings.ocpp_upstream),
    )
