"""Actions on one subscription: enable or disable, delete, rotate the signing secret, send a test event, and
resend failed deliveries in a time window."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from chargewire.backoffice.forms import first
from chargewire.backoffice.guards import CheckedForm, Operator, runtime_of
from chargewire.backoffice.rendering import PREFIX, render, session_of
from chargewire.backoffice.routes.subscriptions import detail_page, form_input
from chargewire.errors import Conflict, ValidationFailed
from chargewire.services.subscriptions import OPERATOR

router = APIRouter()


def _to_detail(subscription_id: str) -> Response:
    return RedirectResponse(f"{PREFIX}/subscriptions/{subscription_id}", status_code=303)


def parse_local_time(text: str, field: str, errors: dict[str, list[str]]) -> datetime | None:
    """A `datetime-local` field's value, read as UTC; None when empty, an error naming `field` when unreadable."""
    if not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        errors[field] = ["Enter a date and time such as 2026-11-26T09:30."]
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@router.post("/subscriptions/{subscription_id}/enabled")
async def set_enabled(request: Request, _: Operator, subscription_id: str, form: CheckedForm) -> Response:
    """Pause or resume deliveries."""
    enabled = form.get("enabled") == "true"
    await runtime_of(request).subscriptions.set_enabled(OPERATOR, subscription_id, enabled)
    message = "Subscription enabled: deliveries resume." if enabled else "Subscription disabled: deliveries wait."
    session_of(request).flash("ok", message)
    return _to_detail(subscription_id)


@router.get("/subscriptions/{subscription_id}/delete")
async def confirm_delete(request: Request, _: Operator, subscription_id: str) -> Response:
    """Ask before deleting."""
    subscription = await runtime_of(request).subscriptions.get(OPERATOR, subscription_id)
    return render(request, "subscriptions/delete.html", subscription=subscription)


@router.post("/subscriptions/{subscription_id}/delete")
async def delete(request: Request, _: Operator, subscription_id: str, form: CheckedForm) -> Response:
    """Unsubscribe: the subscription and its pending deliveries are removed."""
    await runtime_of(request).subscriptions.delete(OPERATOR, subscription_id)
    session_of(request).flash("ok", f"Subscription {subscription_id} deleted.")
    return RedirectResponse(f"{PREFIX}/subscriptions", status_code=303)


@router.post("/subscriptions/{subscription_id}/rotate-secret")
async def rotate_secret(request: Request, _: Operator, subscription_id: str, form: CheckedForm) -> Response:
    """Make a new signing secret and show it once; earlier ones stay valid for the overlap."""
    runtime = runtime_of(request)
    secret, valid = await runtime.subscriptions.rotate_secret(OPERATOR, subscription_id)
    subscription = await runtime.subscriptions.get(OPERATOR, subscription_id)
    expiries = [s.expires_at for s in valid if s.expires_at is not None]
    return render(request, "subscriptions/secret.html", subscription=subscription, secret=secret, expiries=expiries)


@router.post("/subscriptions/{subscription_id}/test")
async def send_test(request: Request, _: Operator, subscription_id: str, form: CheckedForm) -> Response:
    """Deliver the catalog's example of an event now; shows that delivery's page."""
    chosen = str(form.get("notification", "")) or None
    try:
        _event_id, delivery_id = await runtime_of(request).deliveries.test_send(OPERATOR, subscription_id, chosen)
    except ValidationFailed as failure:
        session_of(request).flash("error", failure.message)
        return _to_detail(subscription_id)
    session_of(request).flash("ok", "Test event queued for delivery.")
    return RedirectResponse(f"{PREFIX}/deliveries/{delivery_id}", status_code=303)


@router.post("/subscriptions/{subscription_id}/resend")
async def resend(request: Request, _: Operator, subscription_id: str, form: CheckedForm) -> Response:
    """Give the failed deliveries of the chosen events in the window one more attempt each."""
    submitted = form_input(form)
    errors: dict[str, list[str]] = {}
    start = parse_local_time(first(submitted, "startTime"), "startTime", errors)
    end = parse_local_time(first(submitted, "endTime"), "endTime", errors)
    names = submitted.get("notifications", [])
    values = {
        "notifications": names,
        "startTime": first(submitted, "startTime"),
        "endTime": first(submitted, "endTime"),
    }
    try:
        if errors:
            raise ValidationFailed(errors)
        queued = await runtime_of(request).resends.resend(OPERATOR, subscription_id, names, start, end)
    except ValidationFailed as failure:
        return await detail_page(request, subscription_id, 422, failure.errors, values)
    except Conflict as conflict:
        session_of(request).flash("error", conflict.message)
        return _to_detail(subscription_id)
    plural = "delivery" if queued == 1 else "deliveries"
    session_of(request).flash("ok", f"Queued {queued} failed {plural} for one more attempt.")
    return _to_detail(subscription_id)
