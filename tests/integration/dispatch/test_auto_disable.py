"""A subscription that keeps failing is disabled, visibly, and enabling it again resumes delivery."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from chargewire.catalog import load_event_types
from chargewire.config import Settings
from chargewire.dispatch.dispatcher import Dispatcher
from chargewire.runtime import Runtime
from chargewire.services.subscriptions import OPERATOR
from tests.integration.dispatch.conftest import Subscribe
from tests.support.receiver import Receiver, Reply

BOOT = load_event_types()["BootNotification"].example


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Disable after one second of failures, checked often; retries far apart so only the check acts."""
    return settings.model_copy(
        update={
            "disable_after_failing_s": 1.0,
            "disable_check_interval_s": 0.2,
            "retry_schedule_s": [0.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
        }
    )


async def test_failing_subscription_is_disabled_and_announced_then_resumes_when_enabled(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe, dispatcher: Dispatcher
) -> None:
    healthy = {"up": False}
    dead = await subscribe(
        receiver.on("/dead", lambda _request, _count: Reply(202 if healthy["up"] else 500)), "BootNotification"
    )
    await subscribe(receiver.on("/ops", lambda _request, _count: Reply(202)), "subscription.disabled")
    await runtime.publisher.publish([BOOT])

    [announcement] = await receiver.wait_for(1, "/ops", timeout_s=20)
    event = orjson.loads(announcement.body)
    assert event["notification"] == "subscription.disabled"
    assert event["subscriptionId"] == dead.subscription.id
    assert event["target"] == dead.subscription.callback_url
    disabled = await runtime.subscriptions.get(OPERATOR, dead.subscription.id)
    assert disabled.enabled is False
    assert disabled.disabled_reason

    healthy["up"] = True
    before = len(receiver.on_path("/dead"))
    await runtime.subscriptions.set_enabled(OPERATOR, dead.subscription.id, True)
    await runtime.publisher.publish([BOOT])
    await receiver.wait_for(before + 1, "/dead", timeout_s=20)
    assert (await runtime.subscriptions.get(OPERATOR, dead.subscription.id)).enabled is True
    await asyncio.sleep(0.5)
    assert len(receiver.on_path("/ops")) == 1
