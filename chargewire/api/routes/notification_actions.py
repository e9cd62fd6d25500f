"""Actions on subscriptions: `POST /public-api/actions/notifications/v1.0/{notification}/resend`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from chargewire.api.auth import runtime_of
from chargewire.api.routes.notifications_v2 import (
    ERROR_RESPONSES,
    NOT_FOUND,
    ManageToken,
    Message,
    document_event_names,
)
from chargewire.api.times import as_utc
from chargewire.services.subscriptions import Caller

router = APIRouter(prefix="/public-api/actions/notifications/v1.0", tags=["notifications v2.0"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    **NOT_FOUND,
    409: {"model": Message, "description": "Disabled, or resent less than the cooldown (15 minutes) ago"},
}


class ResendIn(BaseModel):
    """Which failed notifications to send again: these events, created between the two times (inclusive)."""

    notifications: list[str] = Field(min_length=1, json_schema_extra=document_event_names)
    startTime: datetime | None = Field(None, description="ISO 8601; a time without offset is UTC")
    endTime: datetime | None = Field(None, description="ISO 8601, not before startTime")


class ResendQueued(BaseModel):
    """How many failed deliveries were queued for one more attempt."""

    queued: int


class ResendAccepted(BaseModel):
    """`202`: the deliveries are queued (a chargewire addition: how many)."""

    data: ResendQueued


@router.post(
    "/{notification}/resend",
    status_code=202,
    response_model=ResendAccepted,
    responses=_RESPONSES,
    summary="Resend failed notifications",
)
async def resend_failed(notification: str, body: ResendIn, request: Request, token: ManageToken) -> JSONResponse:
    """Give every failed delivery of these events in the window one more attempt; at most once per cooldown."""
    queued = await runtime_of(request).resends.resend(
        Caller.of(token),
        notification,
        body.notifications,
        as_utc(body.startTime, "startTime"),
        as_utc(body.endTime, "endTime"),
    )
    return JSONResponse({"data": {"queued": queued}}, status_code=202)
