"""Fixtures for delivery tests: a live receiver, a subscription owner, and a running dispatcher."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from chargewire.config import Settings
from chargewire.dispatch.dispatcher import Dispatcher
from chargewire.runtime import Runtime
from chargewire.services.subscriptions import CreatedSubscription
from chargewire.services.tokens import CreatedToken

FAST_RETRIES = [0.0, 0.3, 0.3, 0.3]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Test settings with a retry schedule of fractions of a second and no jitter."""
    return settings.model_copy(
        update={"retry_schedule_s": FAST_RETRIES, "retry_jitter": 0.0, "worker_poll_interval_s": 0.05}
    )


@pytest.fixture
async def owner(runtime: Runtime) -> CreatedToken:
    """The token that creates the test subscriptions (it keys their X-Signature)."""
    return await runtime.tokens.create("integration", ["notifications:manage", "events:publish"])


Subscribe = Callable[..., Awaitable[CreatedSubscription]]


@pytest.fixture
def subscribe(runtime: Runtime, owner: CreatedToken) -> Subscribe:
    """Subscribe a URL to events: `await subscribe(url, "BootNotification", filter={...})`."""

    async def make(url: str, *events: str, **extra: Any) -> CreatedSubscription:
        body = {"via": "webhook", "notifications": list(events), "webhook": {"callbackUrl": url}, **extra}
        return await runtime.subscriptions.create(owner.token, body)

    return make


@pytest.fixture
async def dispatcher(runtime: Runtime) -> AsyncIterator[Dispatcher]:
    """A dispatcher delivering in the background for the length of the test."""
    running = runtime.dispatcher()
    stop = asyncio.Event()
    task = asyncio.create_task(running.run(stop))
    yield running
    stop.set()
    await asyncio.wait_for(task, 30)
