"""The delivery log over HTTP: list, inspect with attempts, retry now, and send a test event."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from chargewire.api.auth import require_scope, runtime_of
from chargewire.api.links import cursor_page_links
from chargewire.api.times import as_utc
from chargewire.models import ApiToken, Attempt, Delivery, DeliveryStatus, Scope
from chargewire.services.subscriptions import Caller
from chargewire.store.delivery_log import DeliveryFilter

router = APIRouter(prefix="/api/v1", tags=["deliveries"])
Manager = Annotated[ApiToken, Depends(require_scope(Scope.NOTIFICATIONS_MANAGE))]


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    """A delivery as the API shows it."""
    return {
        "id": delivery.id,
        "eventId": delivery.event_id,
        "subscriptionId": delivery.subscription_id,
        "notification": delivery.event_name,
        "status": delivery.status.value,
        "attempts": delivery.attempt_count,
        "nextAttemptAt": _iso(delivery.next_attempt_at) if delivery.status is DeliveryStatus.PENDING else None,
        "lastError": delivery.last_error,
        "createdAt": _iso(delivery.created_at),
        "updatedAt": _iso(delivery.updated_at),
    }


def attempt_json(attempt: Attempt) -> dict[str, Any]:
    """One attempt as the API shows it."""
    return {
        "id": attempt.id,
        "number": attempt.number,
        "startedAt": _iso(attempt.started_at),
        "durationMs": round(attempt.duration_ms, 3),
        "outcome": attempt.outcome,
        "statusCode": attempt.status_code,
        "errorClass": attempt.error_class,
        "errorMessage": attempt.error_message,
        "requestHeaders": attempt.request_headers,
        "responseHeaders": attempt.response_headers,
        "responseBody": attempt.response_body,
    }


@router.get("/deliveries", summary="List deliveries (newest first)")
async def list_deliveries(
    request: Request,
    token: Manager,
    subscription: Annotated[str | None, Query(description="Only this subscription's deliveries")] = None,
    status: Annotated[DeliveryStatus | None, Query(description="pending, delivered or failed")] = None,
    notification: Annotated[str | None, Query(description="Only this event type")] = None,
    event: Annotated[str | None, Query(description="Only deliveries of this event id")] = None,
    since: Annotated[datetime | None, Query(description="Created at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="Created at or before (ISO 8601)")] = None,
    cursor: Annotated[str | None, Query(description="From `meta.next_cursor` of the previous page")] = None,
    per_page: Annotated[int, Query(ge=1, le=100)] = 50,
) -> JSONResponse:
    """A page of the delivery log, filtered by subscription, status, event and time."""
    where = DeliveryFilter(
        subscription_id=subscription,
        status=status,
        event_name=notification,
        event_id=event,
        since=as_utc(since, "since"),
        until=as_utc(until, "until"),
    )
    page = await runtime_of(request).deliveries.list_page(Caller.of(token), where, cursor, per_page)
    return JSONResponse(
        {
            "data": [delivery_json(delivery) for delivery in page.deliveries],
            # The log pages forward only (newest first): there is no cursor back.
            **cursor_page_links(request, per_page, page.next_cursor, None),
        }
    )


@router.get("/deliveries/{delivery_id}", summary="A delivery with its attempts")
async def get_delivery(request: Request, token: Manager, delivery_id: str) -> JSONResponse:
    """One delivery, the payload it carries, and every attempt with request and response details."""
    detail = await runtime_of(request).deliveries.get(Caller.of(token), delivery_id)
    body = delivery_json(detail.delivery) | {
        "payload": orjson.loads(detail.payload),
        "attemptLog": [attempt_json(attempt) for attempt in detail.attempts],
    }
    return JSONResponse({"data": body})


@router.post("/deliveries/{delivery_id}/retry", status_code=202, summary="Attempt a delivery now")
async def retry_delivery(request: Request, token: Manager, delivery_id: str) -> JSONResponse:
    """Queue the delivery for an attempt now; a delivered or failed one gets exactly one more attempt."""
    delivery = await runtime_of(request).deliveries.retry(Caller.of(token), delivery_id)
    return JSONResponse({"data": delivery_json(delivery)}, status_code=202)


class TestSend(BaseModel):
    """Which event's example to send; the subscription's first event when absent."""

    notification: str | None = None


@router.post("/subscriptions/{subscription_id}/test", status_code=202, summary="Send a test event")
async def send_test_event(
    request: Request, token: Manager, subscription_id: str, body: TestSend | None = None
) -> JSONResponse:
    """Deliver the catalog's example of an event to this subscription now, whatever its filter says."""
    chosen = body.notification if body else None
    event_id, delivery_id = await runtime_of(request).deliveries.test_send(Caller.of(token), subscription_id, chosen)
    return JSONResponse({"data": {"eventId": event_id, "deliveryId": delivery_id}}, status_code=202)
