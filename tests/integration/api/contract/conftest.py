"""Contract-client fixtures: API clients holding an admin token, two manage tokens and a publish-only token."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from notifications_api_client import NotificationsClient

from chargewire.config import Settings
from chargewire.runtime import Runtime
from chargewire.web import create_app
from tests.conftest import TokenFactory

RATE_LIMIT = 5


@pytest.fixture
async def admin(api: httpx.AsyncClient, token_factory: TokenFactory) -> NotificationsClient:
    return NotificationsClient(api, await token_factory("admin", name="admin"))


@pytest.fixture
async def manager(api: httpx.AsyncClient, token_factory: TokenFactory) -> NotificationsClient:
    return NotificationsClient(api, await token_factory("notifications:manage", name="manager"))


@pytest.fixture
async def other_manager(api: httpx.AsyncClient, token_factory: TokenFactory) -> NotificationsClient:
    return NotificationsClient(api, await token_factory("notifications:manage", name="other manager"))


@pytest.fixture
async def publisher(api: httpx.AsyncClient, token_factory: TokenFactory) -> NotificationsClient:
    return NotificationsClient(api, await token_factory("events:publish", name="publisher"))


@pytest.fixture
async def limited(
    settings: Settings, runtime: Runtime, token_factory: TokenFactory
) -> AsyncIterator[NotificationsClient]:
    """A client of an app on the same database whose rate limit is RATE_LIMIT requests a minute."""
    token = await token_factory("admin", name="limited")
    async with await Runtime.open(settings.model_copy(update={"api_rate_limit_per_minute": RATE_LIMIT})) as opened:
        transport = httpx.ASGITransport(app=create_app(opened))
        async with httpx.AsyncClient(transport=transport, base_url="http://chargewire.test") as http:
            yield NotificationsClient(http, token)
