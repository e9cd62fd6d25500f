"""Parsing a verified notification body into the typed payload of its `notification` name.

    event = parse_event(body)
    if isinstance(event, UnknownEvent):
        ...                                   # a name this version does not know yet: keep, don't fail
    elif event["notification"] == "SessionStartStopNotification":
        event["meterStop"]                    # typed as the SessionStartStopNotification payload

The payloads are `TypedDict`s (see `events.py`): parsing checks the name, not every field, so a field the
catalog adds later reaches the subscriber instead of breaking the parse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

from chargewire.receiver.events import EVENT_TYPES, KnownEvent


class MalformedEvent(ValueError):
    """The body is not a JSON object with a `notification` name."""


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """An event whose name this version of the kit does not know, kept whole."""

    notification: str
    payload: dict[str, Any]


Event = KnownEvent | UnknownEvent


def event_name(event: Event) -> str:
    """The notification name of a parsed event, known or not."""
    return event.notification if isinstance(event, UnknownEvent) else event["notification"]


def parse_event(body: bytes | str) -> Event:
    """The typed payload of `body`, or an `UnknownEvent` for a name outside the catalog."""
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise MalformedEvent("the body is not JSON") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("notification"), str):
        raise MalformedEvent("the body is not a JSON object with a `notification` name")
    if payload["notification"] not in EVENT_TYPES:
        return UnknownEvent(payload["notification"], payload)
    return cast(KnownEvent, payload)
