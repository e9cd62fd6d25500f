"""The subscription form: its fields are named as the API's (`webhook.callbackUrl`, `kafka.brokers`), so the
API's validation errors land next to the field they name.

`body_from_form` turns a submitted form into the API's request body; `form_values` fills the form from a
subscription; `errors_by_field` files the API's error keys (`kafka.brokers.0`, `notifications.2`) under the
form field that shows them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from chargewire.models import Subscription, Via

FIELDS = (
    "token_id",
    "via",
    "notifications",
    "webhook.callbackUrl",
    "kafka.topic",
    "kafka.brokers",
    "kafka.compressionCodec",
    "kafka.securityProtocol",
    "kafka.saslMechanism",
    "kafka.saslUsername",
    "kafka.saslPassword",
    "kafka.caCertificate",
    "kafka.clientCertificate",
    "kafka.clientKey",
    "enabled",
    "description",
    "filter",
    "retrySchedule",
)
FORM_WIDE = "_form"
_KAFKA_TEXT = ("topic", "saslUsername", "saslPassword", "caCertificate", "clientCertificate", "clientKey")
_KAFKA_CHOICES = ("compressionCodec", "securityProtocol", "saslMechanism")
_LIST_SEPARATORS = re.compile(r"[\s,]+")
# Where an error about a whole object is shown: on its first field.
_OBJECT_FIELDS = {"webhook": "webhook.callbackUrl", "kafka": "kafka.topic"}
_INDEXED_LABELS = {"kafka.brokers": "Broker", "retrySchedule": "Delay", "notifications": "Event"}

FormInput = Mapping[str, Sequence[str]]


def first(form: FormInput, name: str) -> str:
    """The first value submitted for a field, or an empty string."""
    values = form.get(name, ())
    return values[0] if values else ""


def body_from_form(form: FormInput) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The API body for a submitted form, and errors for fields that are not even readable (filter JSON).

    Only the section of the chosen `via` is sent. Empty secret fields are sent as null, which keeps the stored
    secret on an edit, as the API does.
    """
    errors: dict[str, list[str]] = {}
    via = first(form, "via")
    body: dict[str, Any] = {"via": via or None, "notifications": list(form.get("notifications", ()))}
    if via == Via.WEBHOOK.value:
        body["webhook"] = {"callbackUrl": first(form, "webhook.callbackUrl").strip()}
    elif via == Via.KAFKA.value:
        kafka: dict[str, Any] = {name: first(form, f"kafka.{name}").strip() or None for name in _KAFKA_TEXT}
        kafka.update({name: first(form, f"kafka.{name}") or None for name in _KAFKA_CHOICES})
        kafka["brokers"] = [part for part in _LIST_SEPARATORS.split(first(form, "kafka.brokers")) if part]
        body["kafka"] = kafka
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
    values: dict[str, Any] = dict.fromkeys(FIELDS, "")
    values.update(
        token_id=subscription.token_id,
        via=subscription.via.value,
        notifications=list(subscription.notifications),
        enabled=subscription.enabled,
        description=subscription.description or "",
        filter=json.dumps(subscription.filter, indent=2) if subscription.filter is not None else "",
        retrySchedule=", ".join(f"{delay:g}" for delay in subscription.retry_schedule_s or ()),
    )
    if subscription.callback_url is not None:
        values["webhook.callbackUrl"] = subscription.callback_url
    if subscription.kafka is not None:
        kafka = subscription.kafka
        values.update(
            {
                "kafka.topic": kafka.topic,
                "kafka.brokers": "\n".join(kafka.brokers),
                "kafka.compressionCodec": kafka.compression_codec,
                "kafka.securityProtocol": kafka.security_protocol,
                "kafka.saslMechanism": kafka.sasl_mechanism or "PLAIN",
                "kafka.saslUsername": kafka.sasl_username or "",
                "kafka.caCertificate": kafka.ca_certificate or "",
                "kafka.clientCertificate": kafka.client_certificate or "",
            }
        )
    return values


def submitted_values(form: FormInput) -> dict[str, Any]:
    """The form's fields as submitted, to show the form again with its errors (without the secrets)."""
    values: dict[str, Any] = {name: first(form, name) for name in FIELDS}
    values["notifications"] = list(form.get("notifications", ()))
    values["enabled"] = first(form, "enabled") in ("on", "true", "1")
    values["kafka.saslPassword"] = values["kafka.clientKey"] = ""
    return values


def blank_values(via: str) -> dict[str, Any]:
    """An empty form for a new subscription of one kind."""
    values: dict[str, Any] = dict.fromkeys(FIELDS, "")
    values.update(
        {
            "via": via if via in (Via.WEBHOOK.value, Via.KAFKA.value) else Via.WEBHOOK.value,
            "notifications": [],
            "enabled": True,
            "kafka.compressionCodec": "gzip",
            "kafka.securityProtocol": "PLAINTEXT",
            "kafka.saslMechanism": "PLAIN",
        }
    )
    return values


def errors_by_field(errors: Mapping[str, Sequence[str]], fields: Sequence[str] = FIELDS) -> dict[str, list[str]]:
    """API error keys filed under the form field that shows them; the rest under FORM_WIDE.

    `kafka.brokers.1` goes to `kafka.brokers` as "Broker 2: ..."; `filter.$and.0` to `filter` naming the path.
    """
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
    if key in _OBJECT_FIELDS and _OBJECT_FIELDS[key] in fields:
        return _OBJECT_FIELDS[key], ""
    for name in sorted(fields, key=len, reverse=True):
        if key.startswith(name + "."):
            rest = key[len(name) + 1 :]
            if rest.isdigit() and name in _INDEXED_LABELS:
                return name, f"{_INDEXED_LABELS[name]} {int(rest) + 1}"
            return name, rest
    return FORM_WIDE, ""
