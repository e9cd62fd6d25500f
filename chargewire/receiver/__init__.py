"""For subscribers: verify chargewire's signatures and read each notification as its typed payload.

Standard library only: importing it loads nothing of the service (FastAPI, SQLAlchemy, aiohttp, Kafka).
The FastAPI integration lives in `chargewire.receiver.fastapi` and is imported only when asked for.
"""

from chargewire.receiver.event import Event, MalformedEvent, UnknownEvent, event_name, parse_event
from chargewire.receiver.events import EVENT_TYPES, KnownEvent
from chargewire.receiver.kafka import record_headers
from chargewire.receiver.verifier import Verifier
from chargewire.receiver.verify import (
    DEFAULT_TOLERANCE_S,
    InvalidSignature,
    Reason,
    verify_notification,
    verify_webhook_signature,
    verify_x_signature,
)

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "EVENT_TYPES",
    "Event",
    "InvalidSignature",
    "KnownEvent",
    "MalformedEvent",
    "Reason",
    "UnknownEvent",
    "Verifier",
    "event_name",
    "parse_event",
    "record_headers",
    "verify_notification",
    "verify_webhook_signature",
    "verify_x_signature",
]
