"""The deprecated Notifications API v1.0: webhooks only, `{webhookId, notifications, callbackUrl}`, page numbers.

It shares the v2.0 rules and storage: a v1.0 webhook is a v2.0 webhook subscription. Kafka subscriptions do
not exist for v1.0 (404), and a v1.0 replace keeps chargewire's extensions as they are.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from chargewire.api.auth import runtime_of
from chargewire.api.links import page_link
from chargewire.api.routes.notifications_v2 import ERROR_RESPONSES, NOT_FOUND, Links, ManageToken, document_event_names
from chargewire.channels.webhook_type import MAX_CALLBACK_URL_LENGTH
from chargewire.errors import ValidationFailed
from chargewire.models import Subscription, Via
from chargewire.services.subscriptions import MAX_PER_PAGE, Caller, NumberedPage

router = APIRouter(prefix="/public-api/notifications/v1.0", tags=["notifications v1.0 (deprecated)"])

# Laravel's page-link window: every page up to this many, otherwise the ends and the pages around the current one.
_ALL_PAGES_UP_TO = 13
_PAGES_EACH_SIDE = 3


class WebhookV1In(BaseModel):
    """The v1.0 body of POST and PUT."""

    callbackUrl: str = Field(max_length=MAX_CALLBACK_URL_LENGTH, json_schema_extra={"format": "uri"})
    notifications: list[str] = Field(min_length=1, json_schema_extra=document_event_names)


class WebhookV1Out(BaseModel):
    """A v1.0 webhook."""

    webhookId: str
    notifications: list[str]
    callbackUrl: str


class WebhookV1Created(WebhookV1Out):
    """A new v1.0 webhook, with its signing secret (a chargewire addition, shown once)."""

    signingSecret: str


class WebhookV1Envelope(BaseModel):
    """`{"data": webhook}`."""

    data: WebhookV1Out


class PageLink(BaseModel):
    """One entry of Laravel's page links."""

    url: str | None
    label: str
    active: bool


class NumberedMeta(BaseModel):
    """Where the page is among all pages."""

    current_page: int
    from_: int | None = Field(alias="from")
    last_page: int
    links: list[PageLink]
    path: str
    per_page: int
    to: int | None
    total: int


class WebhookV1List(BaseModel):
    """One page of webhooks."""

    data: list[WebhookV1Out]
    links: Links
    meta: NumberedMeta


def _webhook_data(subscription: Subscription) -> dict[str, Any]:
    return {
        "webhookId": subscription.id,
        "notifications": list(subscription.notifications),
        "callbackUrl": subscription.callback_url,
    }


def _v2_body(body: WebhookV1In) -> dict[str, Any]:
    return {"via": "webhook", "notifications": body.notifications, "webhook": {"callbackUrl": body.callbackUrl}}


def _v1_fields(failure: ValidationFailed) -> ValidationFailed:
    """The same errors named as v1.0 fields: `webhook.callbackUrl` is `callbackUrl` there."""
    renamed: dict[str, list[str]] = {}
    for field, messages in failure.errors.items():
        name = "callbackUrl" if field in ("webhook", "webhook.callbackUrl") else field
        renamed.setdefault(name, []).extend(messages)
    return ValidationFailed(renamed, failure.message)


def _numbered_list(request: Request, page: NumberedPage) -> dict[str, Any]:
    last_page = max(1, math.ceil(page.total / page.per_page))

    def url(number: int) -> str:
        return page_link(request, page=number)

    count = len(page.items)
    first_index = (page.page - 1) * page.per_page + 1
    links = [{"url": url(page.page - 1) if page.page > 1 else None, "label": "&laquo; Previous", "active": False}]
    for number in _page_window(page.page, last_page):
        if number is None:
            links.append({"url": None, "label": "...", "active": False})
        else:
            links.append({"url": url(number), "label": str(number), "active": number == page.page})
    has_next = page.page < last_page
    links.append({"url": url(page.page + 1) if has_next else None, "label": "Next &raquo;", "active": False})
    return {
        "data": [_webhook_data(item) for item in page.items],
        "links": {
            "first": url(1),
            "last": url(last_page),
            "prev": url(page.page - 1) if page.page > 1 else None,
            "next": url(page.page + 1) if has_next else None,
        },
        "meta": {
            "current_page": page.page,
            "from": first_index if count else None,
            "last_page": last_page,
            "links": links,
            "path": page_link(request),
            "per_page": page.per_page,
            "to": first_index + count - 1 if count else None,
            "total": page.total,
        },
    }


def _page_window(current: int, last: int) -> list[int | None]:
    """Page numbers to link, with None for an elided run."""
    if last <= _ALL_PAGES_UP_TO:
        return list(range(1, last + 1))
    around = range(max(1, current - _PAGES_EACH_SIDE), min(last, current + _PAGES_EACH_SIDE) + 1)
    numbers: list[int | None] = []
    previous = 0
    for number in sorted({1, 2, last - 1, last, *around}):
        if number - previous > 1:
            numbers.append(None)
        numbers.append(number)
        previous = number
    return numbers


@router.post(
    "", status_code=201, response_model=WebhookV1Created, responses=ERROR_RESPONSES, summary="Subscribe a webhook"
)
async def subscribe_webhook(body: WebhookV1In, request: Request, token: ManageToken) -> JSONResponse:
    """Subscribe a webhook (deprecated: use v2.0). The response is not wrapped in `data`."""
    try:
        created = await runtime_of(request).subscriptions.create(token, _v2_body(body), api_version=1)
    except ValidationFailed as failure:
        raise _v1_fields(failure) from failure
    data = {**_webhook_data(created.subscription), "signingSecret": created.signing_secret}
    return JSONResponse(data, status_code=201)


@router.get("", response_model=WebhookV1List, responses=ERROR_RESPONSES, summary="List webhooks")
async def list_webhooks(
    request: Request,
    token: ManageToken,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = MAX_PER_PAGE,
) -> JSONResponse:
    """The caller's webhook subscriptions, by page number."""
    numbered = await runtime_of(request).subscriptions.list_numbered(Caller.of(token), page, per_page, Via.WEBHOOK)
    return JSONResponse(_numbered_list(request, numbered))


@router.get(
    "/{notification}",
    response_model=WebhookV1Envelope,
    responses={**ERROR_RESPONSES, **NOT_FOUND},
    summary="Read a webhook",
)
async def read_webhook(notification: str, request: Request, token: ManageToken) -> JSONResponse:
    """One webhook subscription."""
    subscription = await runtime_of(request).subscriptions.get(Caller.of(token), notification, Via.WEBHOOK)
    return JSONResponse({"data": _webhook_data(subscription)})


@router.put(
    "/{notification}",
    response_model=WebhookV1Envelope,
    responses={**ERROR_RESPONSES, **NOT_FOUND},
    summary="Update a webhook",
)
async def update_webhook(notification: str, body: WebhookV1In, request: Request, token: ManageToken) -> JSONResponse:
    """Replace a webhook's URL and events."""
    service = runtime_of(request).subscriptions
    try:
        subscription = await service.replace(Caller.of(token), notification, _v2_body(body), Via.WEBHOOK)
    except ValidationFailed as failure:
        raise _v1_fields(failure) from failure
    return JSONResponse({"data": _webhook_data(subscription)})


@router.delete(
    "/{notification}",
    status_code=204,
    response_class=Response,
    responses={**ERROR_RESPONSES, **NOT_FOUND},
    summary="Unsubscribe a webhook",
)
async def delete_webhook(notification: str, request: Request, token: ManageToken) -> Response:
    """Remove a webhook subscription."""
    await runtime_of(request).subscriptions.delete(Caller.of(token), notification, Via.WEBHOOK)
    return Response(status_code=204)
