"""Signing secrets: `POST /api/v1/subscriptions/{id}/rotate-secret`, the old secret valid for an overlap."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from chargewire.api.auth import runtime_of
from chargewire.api.routes.notifications_v2 import NOT_FOUND, ManageToken, Message
from chargewire.services.subscriptions import Caller

router = APIRouter(prefix="/api/v1/subscriptions", tags=["signing secrets"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND,
    401: {"model": Message, "description": "Token missing or invalid"},
    403: {"model": Message, "description": "The token lacks notifications:manage, or the subscription is not its"},
}


class RotatedSecret(BaseModel):
    """The new secret (shown once) and until when each earlier one still verifies."""

    signingSecret: str
    previousSecretsExpireAt: list[datetime]


class RotatedEnvelope(BaseModel):
    """`{"data": ...}`."""

    data: RotatedSecret


@router.post("/{subscription_id}/rotate-secret", response_model=RotatedEnvelope, responses=_RESPONSES)
async def rotate_secret(subscription_id: str, request: Request, token: ManageToken) -> JSONResponse:
    """Make a new Standard Webhooks signing secret; deliveries are signed with every valid secret meanwhile."""
    secret, valid = await runtime_of(request).subscriptions.rotate_secret(Caller.of(token), subscription_id)
    expiries = [s.expires_at.isoformat() for s in valid if s.expires_at is not None]
    return JSONResponse({"data": {"signingSecret": secret, "previousSecretsExpireAt": expiries}})
