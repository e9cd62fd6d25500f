"""The channel protocol: what the dispatcher hands a channel, and what a channel reports back.

A channel is a small class: settings in `__init__`, `async send(message) -> AttemptResult`, `aclose()`.
A channel that can send many messages at once far cheaper than one by one (Kafka: one produce loop and one
future for a whole batch) also offers `send_batch`, and the dispatcher then hands it a subscription's
deliveries together.
It owns its client, and translates that library's errors at its boundary into the typed delivery errors of
`chargewire.errors` carried in the result: the dispatcher's retry decision reads their type, never text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from chargewire.errors import DeliveryError
from chargewire.models import Subscription


@dataclass(slots=True)  # not frozen: one is built per record, and a frozen one takes 5x as long
class OutboundMessage:
    """One attempt's worth of work: the stored bytes, where they go, and the keys that sign them."""

    delivery_id: str
    event_id: str
    event_name: str
    payload: bytes
    entity_id: str | None
    subscription: Subscription
    attempt_number: int
    tenant: str
    # The API token that created the subscription: it keys `X-Signature` (the original platform's scheme).
    token_text: str
    # Standard Webhooks secrets (`whsec_...`) valid now, newest first: each signs `webhook-signature`.
    signing_secrets: tuple[str, ...]


@dataclass(slots=True)  # not frozen: one is built per record, and a frozen one takes 5x as long
class AttemptResult:
    """What happened on one attempt: success, or a typed error, with what the log should show."""

    started_at: datetime
    duration_ms: float
    error: DeliveryError | None = None
    status_code: int | None = None
    request_headers: dict[str, str] = field(default_factory=dict)
    response_headers: dict[str, str] | None = None
    response_body: str | None = None

    @property
    def succeeded(self) -> bool:
        """True when the receiver (or broker) took the message."""
        return self.error is None


class Channel(Protocol):
    """Delivers messages one way (webhook, Kafka)."""

    async def send(self, message: OutboundMessage) -> AttemptResult:
        """Make one attempt; never raises for delivery failures, which come back in the result."""
        ...

    async def aclose(self) -> None:
        """Release clients and connections."""
        ...


class OrderFence:
    """Keeps batches sent one after the other in order: once a message of one fails, the later ones go unsent.

    A sender that keeps several batches in flight (a Kafka stream) hands each the same fence: a batch handed
    over after an earlier one failed would otherwise reach the receiver before that one's retry.
    """

    __slots__ = ("broken",)

    def __init__(self) -> None:
        self.broken = False


@runtime_checkable
class BatchChannel(Channel, Protocol):
    """A channel that sends a subscription's messages together, in order."""

    async def send_batch(
        self, messages: Sequence[OutboundMessage], fence: OrderFence | None = None
    ) -> list[AttemptResult]:
        """Attempt every message (all of one subscription); one result per message, in order; never raises.

        With a `fence`: refuse the messages, unsent, if it is broken, and break it if any of them fails.
        """
        ...
