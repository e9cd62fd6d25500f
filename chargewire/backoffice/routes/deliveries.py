"""The delivery log: filtered by subscription, status, event and time; one delivery with its attempts; retry."""

from __future__ import annotations

import contextlib
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from chargewire.backoffice.guards import CheckedForm, Operator, runtime_of
from chargewire.backoffice.rendering import PREFIX, render, session_of
from chargewire.backoffice.routes.subscription_actions import parse_local_time
from chargewire.catalog import load_event_types
from chargewire.errors import Conflict, NotFound, ValidationFailed
from chargewire.models import DeliveryStatus, Subscription
from chargewire.services.subscriptions import OPERATOR
from chargewire.store.delivery_log import DeliveryFilter

router = APIRouter()
PER_PAGE = 50
FILTER_FIELDS = ("subscription", "status", "notification", "since", "until")

Text = Annotated[str, Query(max_length=200)]


@router.get("/deliveries")
async def log_page(
    request: Request,
    _: Operator,
    subscription: Text = "",
    status: Text = "",
    notification: Text = "",
    since: Text = "",
    until: Text = "",
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """A page of the delivery log, newest first."""
    runtime = runtime_of(request)
    errors: dict[str, list[str]] = {}
    chosen_status = None
    if status:
        try:
            chosen_status = DeliveryStatus(status)
        except ValueError:
            errors["status"] = ["Choose pending, delivered or failed."]
    where = DeliveryFilter(
        subscription_id=subscription or None,
        status=chosen_status,
        event_name=notification or None,
        since=parse_local_time(since, "since", errors),
        until=parse_local_time(until, "until", errors),
    )
    deliveries, next_cursor = [], None
    if not errors:
        try:
            page = await runtime.deliveries.list_page(OPERATOR, where, cursor, PER_PAGE)
            deliveries, next_cursor = page.deliveries, page.next_cursor
        except ValidationFailed as failure:
            errors = failure.errors
        except NotFound:
            errors = {"subscription": ["No subscription with that id."]}
    filters = {"subscription": subscription, "status": status, "notification": notification}
    filters |= {"since": since, "until": until}
    chosen: Subscription | None = None
    if subscription and "subscription" not in errors:
        chosen = await runtime.subscriptions.get(OPERATOR, subscription)
    subscriptions = (await runtime.subscriptions.list_page(OPERATOR, 100)).items
    named = {item.id: item for item in subscriptions}
    for subscription_id in {delivery.subscription_id for delivery in deliveries} - set(named):
        with contextlib.suppress(NotFound):  # deleted since: the row keeps its id
            named[subscription_id] = await runtime.subscriptions.get(OPERATOR, subscription_id)
    return render(
        request,
        "deliveries/log.html",
        422 if errors else 200,
        deliveries=deliveries,
        next_cursor=next_cursor,
        filters=filters,
        errors=errors,
        chosen=chosen,
        subscriptions=subscriptions,
        named=named,
        statuses=[status.value for status in DeliveryStatus],
        event_names=list(load_event_types()),
    )


@router.get("/deliveries/{delivery_id}")
async def detail_page(request: Request, _: Operator, delivery_id: str) -> Response:
    """A delivery, its payload, and every attempt with request and response."""
    runtime = runtime_of(request)
    detail = await runtime.deliveries.get(OPERATOR, delivery_id)
    subscription = await runtime.subscriptions.get(OPERATOR, detail.delivery.subscription_id)
    return render(request, "deliveries/detail.html", detail=detail, subscription=subscription)


@router.post("/deliveries/{delivery_id}/retry")
async def retry(request: Request, _: Operator, delivery_id: str, form: CheckedForm) -> Response:
    """Attempt the delivery now (once more when it was delivered or failed)."""
    try:
        await runtime_of(request).deliveries.retry(OPERATOR, delivery_id)
        session_of(request).flash("ok", "Retry queued: the delivery is attempted again now.")
    except Conflict as conflict:
        session_of(request).flash("error", conflict.message)
    return RedirectResponse(f"{PREFIX}/deliveries/{delivery_id}", status_code=303)
