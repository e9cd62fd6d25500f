"""Fixtures for the webhook channel's tests: channels that may reach loopback receivers."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from chargewire.channels.webhook import WebhookChannel
from chargewire.config import Settings

LOOPBACK = ["127.0.0.0/8", "::1/128"]
ChannelFactory = Callable[..., WebhookChannel]


@pytest.fixture
async def channel_for() -> AsyncIterator[ChannelFactory]:
    """Build channels from settings overrides (loopback allowed unless told otherwise); all closed afterwards."""
    channels: list[WebhookChannel] = []

    def build(
        ssl_context: ssl.SSLContext | None = None, max_connections_per_host: int | None = None, **overrides: Any
    ) -> WebhookChannel:
        settings = Settings(**{"delivery_allow_networks": LOOPBACK, "tenant": "tenant-a", **overrides})
        channel = WebhookChannel(settings, ssl_context=ssl_context, max_connections_per_host=max_connections_per_host)
        channels.append(channel)
        return channel

    yield build
    for channel in channels:
        await channel.aclose()
