"""The subscription form: its fields are named as the API's (`webhook.callbackUrl`, `kafka.brokers`), so the
API's validation errors land next to the field they name. Each channel brings its own fields and the way they
become its body section (`chargewire.channels.registry.FormSection`); this module holds the common ones.

`body_from_form` turns a submitted form into the API's request body; `form_values` fills the form from a
subscription; `errors_by_field` files the API's error keys (`kafka.brokers.0`, `notifications.2`) under the
form field that shows them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from chargewire.channels.registry import channel_names, channel_type, channel_types, first_value
from chargewire.models import Subscription

_COMMON_HEAD = ("token_id", "via", "notifications")
_COMMON_TAIL = ("enabled", "description", "filter", "retrySchedule")
FORM_WIDE = "_form"
_LIST_SEPARATORS = re.compile(r"[\s,]+")
_COMMON_INDEXED_LABELS = {"retrySchedule": "Delay", "notifications": "Event"}

FormInput = Mapping[str, Sequence[str]]


first = first_value


def form_fields() -> tuple[str, ...]:
    """Every field of the form, in page order: the owner and `via`, each channel's, then the options."""
    channel_fields = (name for channel in channel_types() for name in channel.form.fields)
    return (*_COMMON_HEAD, *channel_fields, *_COMMON_TAIL)


def body_from_form(form: FormInput) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The API body for a submitted form, and errors for fields that are not even readable (filter JSON).

    Only the section of the chosen `via` is sent. Empty secret fields are sent as null, which keeps the stored
    secret on an edit, as the API does.
    """
    errors: dict[str, list[str]] = {}
    via = first(form, "via")
    body: dict[str, Any] = {"via": via or None, "notifications": list(form.get("notifications", ()))}
    if via in channel_names():
        body[via] = channel_type(via).form.body(form)
    body["enabled"] = first(form, "enabled") in ("on", "true", "1")
    body["description"] = first(form, "description").strip() or None
    filter_text = first(form, "filter").strip()
    if filter_text:
        try:
            body["filter"] = json.loads(filter_text)
        except ValueError as exc:
            errors["filter"] = [f"The filter must be a JSON object: {exc}."]
    else:
        body["filter"] = None
    schedule_text = first(form, "retrySchedule").strip()
    if schedule_text:
        try:
            body["retrySchedule"] = [float(part) for part in _LIST_SEPARATORS.split(schedule_text) if part]
        except ValueError:
            errors["retrySchedule"] = ["The retry schedule is a list of numbers of seconds, such as 5, 300, 1800."]
    else:
        body["retrySchedule"] = None
    return body, errors


def form_values(subscription: Subscription) -> dict[str, Any]:
    """The form's fields filled from a subscription (secrets are never put back in a page)."""
    values: dict[str, Any] = dict.fromkeys(form_fields(), "")
    values.update(
        token_id=subscription.token_id,
        via=str(subscription.via),
        notifications=list(subscription.notifications),
        enabled=subscription.enabled,
        description=subscription.description or "",
        filter=json.dumps(subscription.filter, indent=2) if subscription.filter is not None else "",
        retrySchedule=", ".join(f"{delay:g}" for delay in subscription.retry_schedule_s or ()),
    )
    values.update(channel_type(str(subscription.via)).form.values(subscription))
    return values


def submitted_values(form: FormInput) -> dict[str, Any]:
    """The form's fields as submitted, to show the form again with its errors (without the secrets)."""
    values: dict[str, Any] = {name: first(form, name) for name in form_fields()}
    values["notifications"] = list(form.get("notifications", ()))
    values["enabled"] = first(form, "enabled") in ("on", "true", "1")
    values.update(dict.fromkeys((name for channel in channel_types() for name in channel.form.secret_fields), ""))
    return values


def blank_values(via: str) -> dict[str, Any]:
    """An empty form for a new subscription of one kind."""
    values: dict[str, Any] = dict.fromkeys(form_fields(), "")
    names = channel_names()
    values.update({"via": via if via in names else names[0], "notifications": [], "enabled": True})
    for channel in channel_types():
        values.update(channel.form.defaults)
    return values


def errors_by_field(errors: Mapping[str, Sequence[str]], fields: Sequence[str] | None = None) -> dict[str, list[str]]:
    """API error keys filed under the form field that shows them (the subscription form's by default); the rest
    under FORM_WIDE.

    `kafka.brokers.1` goes to `kafka.brokers` as "Broker 2: ..."; `filter.$and.0` to `filter` naming the path.
    """
    fields = form_fields() if fields is None else fields
    filed: dict[str, list[str]] = {}
    for key, messages in errors.items():
        target, label = _field_of(key, fields)
        for message in messages:
            filed.setdefault(target, []).append(f"{label}: {message}" if label else message)
    # In the order the fields appear on the page, so the summary at the top reads down the form.
    order = {name: index for index, name in enumerate((FORM_WIDE, *fields))}
    return dict(sorted(filed.items(), key=lambda item: order[item[0]]))


def _field_of(key: str, fields: Sequence[str]) -> tuple[str, str]:
    if key in fields:
        return key, ""
    # An error about a channel's whole section (`kafka`) is shown on its first field.
    if key in channel_names() and channel_type(key).form.fields[0] in fields:
        return channel_type(key).form.fields[0], ""
    labels = dict(_COMMON_INDEXED_LABELS)
    for channel in channel_types():
        labels.update(channel.form.indexed_labels)
    for name in sorted(fields, key=len, reverse=True):
        if key.startswith(name + "."):
            rest = key[len(name) + 1 :]
            if rest.isdigit() and name in labels:
                return name, f"{labels[name]} {int(rest) + 1}"
            return name, rest
    return FORM_WIDE, ""
