"""Reading a subscription body in the Notifications API's shape, with errors named by the contract's fields.

The body is the v2.0 one (`via`, `notifications`, and the target's section named as its channel: `webhook`,
`kafka`) plus chargewire's optional extensions (`enabled`, `description`, `filter`, `retrySchedule`). The
target's section is checked by its channel's description (`chargewire.channels.registry`). Unknown fields are
ignored, as an old client may send more. Checks that need I/O (the address guard) happen in the service.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chargewire.catalog import closest_event_names, load_event_types
from chargewire.channels.registry import FieldErrors, channel_names, channel_type
from chargewire.errors import ValidationFailed
from chargewire.filters import check_filter
from chargewire.models import via_of
from chargewire.storable import storable

MAX_DESCRIPTION_LENGTH = 1000
MAX_EVENT_NAME_LENGTH = 100
MAX_RETRY_STEPS = 20
MAX_RETRY_DELAY_S = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    """A checked subscription body.

    `target` holds the `Subscription` fields the target's channel sets (`callback_url`, `kafka`), and
    `secrets` its secret half, to be stored encrypted. `extensions` holds only the optional fields the client
    sent (by model field name), so a replace keeps the ones an old client does not know about.
    """

    via: str
    notifications: tuple[str, ...]
    target: Mapping[str, Any] = field(default_factory=dict)
    secrets: Any = None
    extensions: Mapping[str, Any] = field(default_factory=dict)


def parse_subscription(body: Mapping[str, Any], stored: object = None) -> SubscriptionSpec:
    """Check a v2.0 body; raises ValidationFailed whose fields are named as in the contract (`kafka.brokers.0`).

    `stored` is the secret half of the subscription being replaced: responses show secrets (`saslPassword`,
    `clientKey`) as null, so a client that reads, edits and writes back a subscription keeps them by sending null.
    """
    errors = FieldErrors()
    via = _via(body.get("via"), errors)
    notifications = parse_event_names(body.get("notifications"), "notifications", errors)
    parsed = channel_type(via).parse(body.get(via), stored, errors) if via is not None else None
    extensions = _extensions(body, errors)
    if via is None or parsed is None or errors.by_field:
        raise ValidationFailed(errors.by_field)
    return SubscriptionSpec(via, notifications, parsed.fields, parsed.secrets, extensions)


def parse_event_names(value: object, where: str, errors: FieldErrors | None = None) -> tuple[str, ...]:
    """A non-empty list of distinct, known event names; errors name the offending index (`notifications.2`)."""
    own = errors is None
    errors = errors or FieldErrors()
    if value is None:
        errors.add(where, f"The {where} field is required.")
    elif not isinstance(value, list):
        errors.add(where, f"The {where} field must be an array of event names.")
    elif not value:
        errors.add(where, f"The {where} field must name at least one event.")
    else:
        known = load_event_types()
        seen: set[str] = set()
        for index, name in enumerate(value):
            path = f"{where}.{index}"
            if not isinstance(name, str):
                errors.add(path, "Each event name must be a string.")
            elif name in seen:
                errors.add(path, f"{name!r} is listed more than once.")
            elif len(name) > MAX_EVENT_NAME_LENGTH:
                errors.add(path, f"Unknown event: names are at most {MAX_EVENT_NAME_LENGTH} characters.")
            elif name not in known:
                suggestions = closest_event_names(name)
                hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
                errors.add(path, f"Unknown event {name!r}.{hint}")
            if isinstance(name, str):
                seen.add(name)
    if own:
        errors.raise_if_any()
    return tuple(value) if isinstance(value, list) and not errors.by_field else ()


def _via(value: object, errors: FieldErrors) -> str | None:
    if value is None:
        errors.add("via", "The via field is required.")
        return None
    names = channel_names()
    if value not in names:
        errors.add("via", f"The via field must be one of: {', '.join(names)}.")
        return None
    return via_of(str(value))


def _extensions(body: Mapping[str, Any], errors: FieldErrors) -> dict[str, Any]:
    sent: dict[str, Any] = {}
    if "enabled" in body:
        if isinstance(body["enabled"], bool):
            sent["enabled"] = body["enabled"]
        elif body["enabled"] is not None:
            errors.add("enabled", "The enabled field must be true or false.")
    if "description" in body:
        text = body["description"]
        if text is not None and (not isinstance(text, str) or len(text) > MAX_DESCRIPTION_LENGTH or not storable(text)):
            errors.add(
                "description", f"The description must be a string of at most {MAX_DESCRIPTION_LENGTH} characters."
            )
        else:
            sent["description"] = text or None
    if "filter" in body:
        try:
            if body["filter"] is not None:
                check_filter(body["filter"])
                if not storable(body["filter"]):
                    raise ValidationFailed({"filter": ["Filter values must be finite numbers and text without NUL."]})
            sent["filter"] = body["filter"] or None
        except ValidationFailed as failure:
            for where, messages in failure.errors.items():
                for message in messages:
                    errors.add(where, message)
    if "retrySchedule" in body and _retry_schedule_ok(body["retrySchedule"], errors):
        schedule = body["retrySchedule"]
        sent["retry_schedule_s"] = tuple(float(delay) for delay in schedule) if schedule is not None else None
    return sent


def _retry_schedule_ok(value: object, errors: FieldErrors) -> bool:
    if value is None:
        return True
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_RETRY_STEPS:
        errors.add("retrySchedule", f"The retry schedule must list 1 to {MAX_RETRY_STEPS} delays in seconds.")
        return False
    ok = True
    for index, delay in enumerate(value):
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay <= MAX_RETRY_DELAY_S:
            message = f"Each delay must be a number of seconds from 0 to {MAX_RETRY_DELAY_S:.0f}."
            errors.add(f"retrySchedule.{index}", message)
            ok = False
    return ok
