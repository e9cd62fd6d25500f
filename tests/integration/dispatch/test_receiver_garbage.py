"""Whatever a receiver answers is recorded on both databases, and never holds up the subscriptions beside it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from chargewire.catalog import load_event_types
from chargewire.config import Settings
from chargewire.dispatch.dispatcher import Dispatcher
from chargewire.models import Delivery, DeliveryStatus
from chargewire.runtime import Runtime
from chargewire.services.subscriptions import OPERATOR
from chargewire.store.delivery_log import DeliveryFilter
from tests.integration.dispatch.conftest import Subscribe
from tests.support.raw_receiver import Endless, RawReceiver

BOOT = load_event_types()["BootNotification"].example
EVENTS = 4
# Long enough that a loaded machine finishes an attempt within it; short enough to see a batch sent again.
LEASE_S = 5.0
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
MANY_LONG_HEADERS = b"".join(b"X-Long-%d: %s\r\n" % (n, b"v\xff" * 4000) for n in range(120))
ANSWERS = {
    "nul_and_invalid_utf8_body": b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab\x00cd\xff\xfe\xc3(",
    "non_utf8_reason_and_header_values": b"HTTP/1.1 200 OK\xff\r\nX-Cafe: caf\xe9 \xff\r\nContent-Length: 0\r\n\r\n",
    "many_long_headers": b"HTTP/1.1 200 OK\r\n" + MANY_LONG_HEADERS + b"Content-Length: 0\r\n\r\n",
    "endless_body": Endless(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
    "refusal_with_garbage_reason": b"HTTP/1.1 400 Bad \xff\xfe Request\r\nContent-Length: 3\r\n\r\n\x00\x00\x00",
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A short lease: a batch that is never recorded comes back, and is sent again, within the test."""
    return settings.model_copy(update={"worker_lease_s": LEASE_S})


@pytest.fixture
async def raw_receiver() -> AsyncIterator[RawReceiver]:
    """A receiver answering raw bytes on loopback."""
    live = RawReceiver()
    await live.start()
    yield live
    await live.aclose()


async def _settled(runtime: Runtime, subscription_id: str, timeout_s: float = 20) -> list[Delivery]:
    """The subscription's deliveries once none is pending any more."""
    where = DeliveryFilter(subscription_id=subscription_id)

    async def poll() -> list[Delivery]:
        while True:
            page = await runtime.deliveries.list_page(OPERATOR, where, None, 100)
            if len(page.deliveries) == EVENTS and all(d.status is not DeliveryStatus.PENDING for d in page.deliveries):
                return page.deliveries
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), timeout_s)


async def test_each_subscription_gets_one_post_per_event_when_its_receiver_answers_garbage(
    runtime: Runtime, raw_receiver: RawReceiver, subscribe: Subscribe, dispatcher: Dispatcher
) -> None:
    # Every kind of garbage at once, each on a subscription of its own beside a healthy one: they share the one
    # wait past a lease below, which each kind in a test of its own waited again (5.5 s each, on both stores).
    routes = {f"/{name}": answer for name, answer in sorted(ANSWERS.items())} | {"/ok": OK}
    created = {
        path: await subscribe(raw_receiver.on(path, answer), "BootNotification") for path, answer in routes.items()
    }
    await runtime.publisher.publish([BOOT] * EVENTS)

    for path, subscription in created.items():
        for delivery in await _settled(runtime, subscription.subscription.id):
            detail = await runtime.deliveries.get(OPERATOR, delivery.id)
            [attempt] = detail.attempts
            headers = attempt.response_headers or {}
            stored = [attempt.response_body or "", attempt.error_message or "", *headers.values()]
            assert "\x00" not in "".join(stored), path
            "".join(stored).encode()  # raises for a lone surrogate, which neither database stores
    # Past a lease: a batch that failed to record would have been claimed and sent again by now.
    await asyncio.sleep(LEASE_S + 0.5)
    assert raw_receiver.posts == dict.fromkeys(routes, EVENTS)
