"""Channels: how a message leaves chargewire as a webhook, and the signing, guard and protocol every channel shares.

The Kafka channel lives with the rest of the Kafka path, in `chargewire.kafka`.
"""

from chargewire.channels.address_guard import (
    BlockedAddress,
    ResolvedAddress,
    blocked_reason,
    check_address,
    check_callback_url,
    is_blocked_address,
    resolve_allowed,
)
from chargewire.channels.base import AttemptResult, Channel, OutboundMessage
from chargewire.channels.signing import (
    USER_AGENT,
    message_headers,
    webhook_headers,
    webhook_signature,
    x_signature,
    x_timestamp,
)
from chargewire.channels.webhook import WebhookChannel, parse_retry_after, status_error

__all__ = [
    "USER_AGENT",
    "AttemptResult",
    "BlockedAddress",
    "Channel",
    "OutboundMessage",
    "ResolvedAddress",
    "WebhookChannel",
    "blocked_reason",
    "check_address",
    "check_callback_url",
    "is_blocked_address",
    "message_headers",
    "parse_retry_after",
    "resolve_allowed",
    "status_error",
    "webhook_headers",
    "webhook_signature",
    "x_signature",
    "x_timestamp",
]
