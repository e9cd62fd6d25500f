"""Channels: how a message leaves chargewire as a webhook, and the signing, guard and protocol every channel shares.

The Kafka channel lives with the rest of the Kafka path, in `chargewire.kafka`. Each channel describes itself
to the registry (`chargewire.channels.registry`; docs/channels.md).
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
from chargewire.channels.registry import (
    ChannelContext,
    ChannelType,
    FieldErrors,
    FormSection,
    PageParts,
    ParsedTarget,
    UnknownChannel,
    channel_names,
    channel_type,
    channel_types,
    register_channel,
    unregister_channel,
)
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
    "ChannelContext",
    "ChannelType",
    "FieldErrors",
    "FormSection",
    "OutboundMessage",
    "PageParts",
    "ParsedTarget",
    "ResolvedAddress",
    "UnknownChannel",
    "WebhookChannel",
    "blocked_reason",
    "channel_names",
    "channel_type",
    "channel_types",
    "check_address",
    "check_callback_url",
    "is_blocked_address",
    "message_headers",
    "parse_retry_after",
    "register_channel",
    "resolve_allowed",
    "status_error",
    "unregister_channel",
    "webhook_headers",
    "webhook_signature",
    "x_signature",
    "x_timestamp",
]
