"""Domain records shared by the store, the services, the dispatcher and the API, and their status words."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

# A Kafka broker as subscriptions name it: host name or [IPv6], a colon, the port.
BROKER_PATTERN = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$"
_BROKER = re.compile(BROKER_PATTERN)


class Scope(StrEnum):
    """What an API token may do."""

    EVENTS_PUBLISH = "events:publish"
    NOTIFICATIONS_MANAGE = "notifications:manage"
    METRICS_READ = "metrics:read"
    ADMIN = "admin"


class Via(StrEnum):
    """The built-in channels a subscription can receive its events through (others register their own names)."""

    WEBHOOK = "webhook"
    KAFKA = "kafka"


def via_of(name: str) -> str:
    """A `via` name as the records carry it: the `Via` member for a built-in channel, else the name itself."""
    try:
        return Via(name)
    except ValueError:
        return name


class DeliveryStatus(StrEnum):
    """Where one (event, subscription) delivery stands."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ApiToken:
    """An API token's record; the token text itself is only known when created or decrypted."""

    id: str
    name: str
    scopes: tuple[Scope, ...]
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    def allows(self, scope: Scope) -> bool:
        """True when the token holds `scope`, or `admin`, which implies every scope."""
        return scope in self.scopes or Scope.ADMIN in self.scopes

    @property
    def is_admin(self) -> bool:
        """True for tokens that see and change everything."""
        return Scope.ADMIN in self.scopes


@dataclass(frozen=True, slots=True)
class Event:
    """An accepted event: its exact payload bytes, as stored and sent on every attempt."""

    id: str
    name: str
    payload: bytes
    entity_id: str | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class KafkaTarget:
    """Where and how a Kafka subscription produces its records (without the secret parts)."""

    topic: str
    brokers: tuple[str, ...]
    compression_codec: str = "gzip"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = "PLAIN"
    sasl_username: str | None = None
    ca_certificate: str | None = None
    client_certificate: str | None = None


def split_broker(broker: object) -> tuple[str, int]:
    """The host (an IPv6 address without its brackets) and port of a "host:port" broker; ValueError if it is not one."""
    match = _BROKER.match(broker) if isinstance(broker, str) else None
    if match is None or not 1 <= int(match[2]) <= 65535:
        raise ValueError(f"{broker!r} is not host:port with a port from 1 to 65535")
    return match[1].removeprefix("[").removesuffix("]"), int(match[2])


@dataclass(frozen=True, slots=True)
class KafkaSecrets:
    """The secret half of a Kafka target: stored encrypted, never returned by the API."""

    sasl_password: str | None = None
    client_key: str | None = None


@dataclass(frozen=True, slots=True)
class SigningSecret:
    """A Standard Webhooks secret; an old one stays valid until `expires_at` after a rotation."""

    secret: str
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Subscription:
    """Who wants which events, and where they go."""

    id: str
    via: str  # a `Via` member for the built-in channels (see `via_of`)
    notifications: tuple[str, ...]
    token_id: str
    api_version: int
    created_at: datetime
    updated_at: datetime
    callback_url: str | None = None
    kafka: KafkaTarget | None = None
    # The target of a channel other than the built-in two, as its JSON document (they have their own fields).
    target: dict[str, Any] | None = None
    enabled: bool = True
    description: str | None = None
    filter: dict[str, Any] | None = None
    retry_schedule_s: tuple[float, ...] | None = None
    disabled_reason: str | None = None
    failing_since: datetime | None = None
    last_resend_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event on its way to one subscription."""

    id: str
    event_id: str
    subscription_id: str
    event_name: str
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    attempt_limit: int | None = None
    last_error: str | None = None


@dataclass(slots=True)  # not frozen: one is built per record, and a frozen one takes 5x as long
class Attempt:
    """One try at a delivery, as recorded for the delivery log."""

    id: str
    delivery_id: str
    number: int
    started_at: datetime
    duration_ms: float
    outcome: str
    status_code: int | None = None
    error_class: str | None = None
    error_message: str | None = None
    request_headers: dict[str, str] = field(default_factory=dict)
    response_headers: dict[str, str] | None = None
    response_body: str | None = None
