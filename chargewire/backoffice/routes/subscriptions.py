"""Subscriptions: the list with each one's health, a subscription's page, and the create and edit forms."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from chargewire.backoffice.forms import (
    FORM_WIDE,
    blank_values,
    body_from_form,
    errors_by_field,
    first,
    form_values,
    submitted_values,
)
from chargewire.backoffice.guards import CheckedForm, Operator, runtime_of
from chargewire.backoffice.rendering import PREFIX, render, session_of
from chargewire.backoffice.routes.catalog import event_groups
from chargewire.channels.registry import channel_types
from chargewire.errors import NotFound, ValidationFailed
from chargewire.ids import has_prefix
from chargewire.models import ApiToken, Scope, Subscription
from chargewire.services.subscriptions import OPERATOR
from chargewire.store.delivery_log import DeliveryFilter

router = APIRouter()
PER_PAGE = 50
RECENT_DELIVERIES = 10
RESEND_FIELDS = ("notifications", "startTime", "endTime")
OWNER_HELP = "Choose the API token that owns this subscription: its text keys the X-Signature header."


def form_input(form: FormData) -> dict[str, list[str]]:
    """Every submitted field with all its values, as text."""
    return {key: [str(value) for value in form.getlist(key)] for key in form}


@router.get("/subscriptions")
async def list_page(
    request: Request, _: Operator, cursor: Annotated[str | None, Query(max_length=200)] = None
) -> Response:
    """Every subscription with its target, events, state and health."""
    runtime = runtime_of(request)
    page = await runtime.subscriptions.list_page(OPERATOR, PER_PAGE, cursor)
    health = await runtime.overview.health([subscription.id for subscription in page.items])
    return render(request, "subscriptions/list.html", page=page, health=health, channels=channel_types())


@router.get("/subscriptions/new")
async def new_page(request: Request, _: Operator, via: Annotated[str, Query(max_length=10)] = "webhook") -> Response:
    """An empty form for a webhook or Kafka subscription."""
    return await form_page(request, None, blank_values(via), {})


@router.post("/subscriptions/new")
async def create(request: Request, _: Operator, form: CheckedForm) -> Response:
    """Subscribe on behalf of the chosen token; shows the signing secret once."""
    runtime = runtime_of(request)
    submitted = form_input(form)
    body, errors = body_from_form(submitted)
    owner = await _owner(request, first(submitted, "token_id"), errors)
    if owner is None or errors:
        errors = await _with_spec_errors(request, body, errors)
        return await form_page(request, None, submitted_values(submitted), errors, 422)
    try:
        created = await runtime.subscriptions.create(owner, body)
    except ValidationFailed as failure:
        return await form_page(request, None, submitted_values(submitted), failure.errors, 422)
    return render(
        request, "subscriptions/created.html", subscription=created.subscription, secret=created.signing_secret
    )


@router.get("/subscriptions/{subscription_id}")
async def detail(request: Request, _: Operator, subscription_id: str) -> Response:
    """One subscription: its settings, health, recent deliveries and actions."""
    return await detail_page(request, subscription_id)


@router.get("/subscriptions/{subscription_id}/edit")
async def edit_page(request: Request, _: Operator, subscription_id: str) -> Response:
    """The form filled with a subscription's settings."""
    subscription = await runtime_of(request).subscriptions.get(OPERATOR, subscription_id)
    return await form_page(request, subscription, form_values(subscription), {})


@router.post("/subscriptions/{subscription_id}/edit")
async def save(request: Request, _: Operator, subscription_id: str, form: CheckedForm) -> Response:
    """Replace a subscription's settings with the form's (empty secret fields keep the stored secrets)."""
    runtime = runtime_of(request)
    subscription = await runtime.subscriptions.get(OPERATOR, subscription_id)
    submitted = form_input(form)
    body, errors = body_from_form(submitted)
    values = submitted_values(submitted) | {"token_id": subscription.token_id}
    if errors:
        stored = await runtime.subscriptions.target_secrets(subscription_id)
        return await form_page(
            request, subscription, values, await _with_spec_errors(request, body, errors, stored), 422
        )
    try:
        await runtime.subscriptions.replace(OPERATOR, subscription_id, body)
    except ValidationFailed as failure:
        return await form_page(request, subscription, values, failure.errors, 422)
    session_of(request).flash("ok", "Subscription saved.")
    return RedirectResponse(f"{PREFIX}/subscriptions/{subscription_id}", status_code=303)


async def form_page(
    request: Request,
    subscription: Subscription | None,
    values: Mapping[str, Any],
    errors: Mapping[str, list[str]],
    status_code: int = 200,
) -> Response:
    """The create or edit form, with errors next to their fields."""
    tokens = [token for token in await runtime_of(request).tokens.list() if token.allows(Scope.NOTIFICATIONS_MANAGE)]
    filed = errors_by_field(errors)
    return render(
        request,
        "subscriptions/form.html",
        status_code,
        subscription=subscription,
        values=values,
        errors=filed,
        form_errors=filed.get(FORM_WIDE, []),
        error_count=sum(len(messages) for messages in filed.values()),
        tokens=tokens,
        groups=event_groups(),
        channels=channel_types(),
        choices={name: options for channel in channel_types() for name, options in channel.form.choices.items()},
    )


async def detail_page(
    request: Request,
    subscription_id: str,
    status_code: int = 200,
    resend_errors: Mapping[str, list[str]] | None = None,
    resend_values: Mapping[str, Any] | None = None,
) -> Response:
    """A subscription's page; the resend form shows its errors when given."""
    runtime = runtime_of(request)
    subscription = await runtime.subscriptions.get(OPERATOR, subscription_id)
    try:
        owner: ApiToken | None = await runtime.tokens.get(subscription.token_id)
    except NotFound:
        owner = None
    health = (await runtime.overview.health([subscription_id])).get(subscription_id)
    recent = await runtime.deliveries.list_page(
        OPERATOR, DeliveryFilter(subscription_id=subscription_id), None, RECENT_DELIVERIES
    )
    return render(
        request,
        "subscriptions/detail.html",
        status_code,
        subscription=subscription,
        owner=owner,
        health=health,
        recent=recent.deliveries,
        resend_errors=errors_by_field(resend_errors or {}, RESEND_FIELDS),
        resend_values=resend_values or {"notifications": list(subscription.notifications)},
    )


async def _owner(request: Request, token_id: str, errors: dict[str, list[str]]) -> ApiToken | None:
    """The token chosen to own a new subscription, or None with an error naming `token_id`."""
    token = None
    if has_prefix(token_id, "tok"):
        try:
            token = await runtime_of(request).tokens.get(token_id)
        except NotFound:
            token = None
    if token is None or token.revoked_at is not None or not token.allows(Scope.NOTIFICATIONS_MANAGE):
        errors["token_id"] = [OWNER_HELP]
        return None
    return token


async def _with_spec_errors(
    request: Request, body: dict[str, Any], errors: dict[str, list[str]], stored: Any = None
) -> dict[str, list[str]]:
    """The form's own errors plus what the API's validation (address guard included) says about the body."""
    merged = dict(errors)
    try:
        await runtime_of(request).subscriptions.validate(body, stored)
    except ValidationFailed as failure:
        for key, messages in failure.errors.items():
            merged.setdefault(key, []).extend(messages)
    return merged
