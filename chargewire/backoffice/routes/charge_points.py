"""The charge points the OCPP tap has seen: identity, ids, OCPP version, connection state, last message."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from chargewire.backoffice.guards import Operator, runtime_of
from chargewire.backoffice.rendering import render
from chargewire.sources.ocpp import list_charge_points, state_file

router = APIRouter()


@router.get("/charge-points")
async def charge_points_page(request: Request, _: Operator) -> Response:
    """Every identity in the tap's registry, as `chargewire ocpp charge-points` lists them."""
    settings = runtime_of(request).settings
    return render(
        request,
        "charge_points.html",
        charge_points=await list_charge_points(state_file(settings)),
        tap_configured=bool(settings.ocpp_listen and settings.ocpp_upstream),
    )
