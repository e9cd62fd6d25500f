"""A publish in the worker's own process that made deliveries is claimed at once, without first asking whether
any delivery is due: that read is for wake-ups that may have made nothing to claim."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.dispatch.dispatcher import Dispatcher
from chargewire.runtime import Runtime
from tests.integration.dispatch.conftest import Subscribe
from tests.support.receiver import Receiver, always

BOOT = load_event_types()["BootNotification"].example
HARDWARE = load_event_types()["HardwareStatusNotification"].example


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A poll far slower than the test: every claim here follows a wake-up."""
    return settings.model_copy(update={"worker_poll_interval_s": 30.0})


@pytest.fixture
def due_checks(runtime: Runtime) -> list[bool]:
    """Whether a delivery was due, by every `next_due_at` read the runtime's (real) delivery store gives, in order."""
    store = runtime.delivery_store
    next_due_at = store.next_due_at
    answers: list[bool] = []

    async def logged() -> datetime | None:
        answer = await next_due_at()
        answers.append(answer is not None and answer <= utcnow())
        return answer

    store.next_due_at = logged  # type: ignore[method-assign]
    return answers


async def test_local_publishes_that_make_deliveries_are_claimed_without_asking_whether_any_is_due(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe, due_checks: list[bool], dispatcher: Dispatcher
) -> None:
    await subscribe(receiver.on("/hook", always(202)), "BootNotification")
    await asyncio.sleep(0.2)  # the dispatcher's first round has asked once
    asked_before = len(due_checks)

    for sent in range(1, 4):
        await runtime.publisher.publish([BOOT])
        await receiver.wait_for(sent, "/hook")

    assert len(due_checks) == asked_before


async def test_a_local_publish_that_made_no_delivery_still_asks_before_it_claims(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe, due_checks: list[bool], dispatcher: Dispatcher
) -> None:
    await subscribe(receiver.on("/hook", always(202)), "BootNotification")
    await asyncio.sleep(0.2)
    asked_before = len(due_checks)

    await runtime.publisher.publish([HARDWARE])  # no subscriber: no delivery

    await asyncio.sleep(0.5)
    assert due_checks[asked_before:] == [False]
