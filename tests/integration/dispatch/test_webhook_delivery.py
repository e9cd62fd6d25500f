"""Webhook delivery end to end: publish, fan out, dispatch, sign, retry, record; against real receivers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import timedelta

import orjson
import pytest
from standardwebhooks import Webhook

from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.dispatch.dispatcher import Dispatcher
from chargewire.models import DeliveryStatus, Via
from chargewire.runtime import Runtime
from chargewire.services.subscriptions import OPERATOR
from chargewire.services.tokens import CreatedToken
from chargewire.store.delivery_claims import ClaimRequest
from chargewire.store.delivery_log import DeliveryFilter
from tests.integration.dispatch.conftest import Subscribe
from tests.support.receiver import Receiver, Reply, always, in_turn

EXAMPLES = {name: event_type.example for name, event_type in load_event_types().items()}
BOOT = EXAMPLES["BootNotification"]


async def _delivery_of(runtime: Runtime, event_id: str, subscription_id: str) -> str:
    where = DeliveryFilter(event_id=event_id, subscription_id=subscription_id)
    [delivery] = (await runtime.deliveries.list_page(OPERATOR, where, None, 10)).deliveries
    return delivery.id


async def _wait_for_status(runtime: Runtime, delivery_id: str, status: DeliveryStatus, timeout_s: float = 20) -> None:
    async def reached() -> None:
        while True:
            detail = await runtime.deliveries.get(OPERATOR, delivery_id)
            if detail.delivery.status is status:
                return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(reached(), timeout_s)


async def test_delivered_request_carries_stored_bytes_and_both_verifiable_signatures(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe, owner: CreatedToken, dispatcher: Dispatcher
) -> None:
    created = await subscribe(receiver.on("/hook", always(202)), "BootNotification")
    [event_id] = await runtime.publisher.publish([BOOT])
    [request] = await receiver.wait_for(1, "/hook")
    [stored] = await runtime.publisher._store.get_events([event_id])

    assert request.body == stored.payload
    expected = hmac.new(owner.text.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Signature"] == expected
    Webhook(created.signing_secret).verify(request.body, request.headers)
    assert request.headers["X-Tenant"] == "test-tenant"
    assert request.headers["X-Webhook-Id"] == created.subscription.id
    assert request.headers["X-Webhook-Type"] == "BootNotification"
    assert request.headers["webhook-id"] == await _delivery_of(runtime, event_id, created.subscription.id)
    assert request.headers["User-Agent"].startswith("chargewire/")
    assert request.headers["X-Timestamp"].endswith("Z")


async def test_retries_keep_the_webhook_id_and_body_until_the_receiver_accepts(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe, dispatcher: Dispatcher
) -> None:
    url = receiver.on("/flaky", in_turn(Reply(500), Reply(503), Reply(200)))
    created = await subscribe(url, "BootNotification")
    [event_id] = await runtime.publisher.publish([BOOT])
    requests = await receiver.wait_for(3, "/flaky")
    assert len({request.headers["webhook-id"] for request in requests}) == 1
    assert len({request.body for request in requests}) == 1
    delivery_id = await _delivery_of(runtime, event_id, created.subscription.id)
    await _wait_for_status(runtime, delivery_id, DeliveryStatus.DELIVERED)
    detail = await runtime.deliveries.get(OPERATOR, delivery_id)
    assert [(a.number, a.outcome, a.status_code) for a in detail.attempts] == [
        (1, "retry", 500),
        (2, "retry", 503),
        (3, "delivered", 200),
    ]


async def test_delivery_fails_after_the_last_attempt_and_keeps_every_attempt(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe, dispatcher: Dispatcher
) -> None:
    created = await subscribe(receiver.on("/down", always(500)), "BootNotification")
    [event_id] = await runtime.publisher.publish([BOOT])
    delivery_id = await _delivery_of(runtime, event_id, created.subscription.id)
    await _wait_for_status(runtime, delivery_id, DeliveryStatus.FAILED)
    detail = await runtime.deliveries.get(OPERATOR, delivery_id)
    assert [attempt.outcome for attempt in detail.attempts] == ["retry", "retry", "retry", "failed"]
    assert all(attempt.error_class == "http_status" for attempt in detail.attempts)
    assert detail.attempts[-1].response_body == "ok"


async def test_throttled_receiver_is_retried_no_sooner_than_its_retry_after(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe, dispatcher: Dispatcher
) -> None:
    created = await subscribe(receiver.on("/busy", always(429)), "BootNotification")
    created_at = utcnow()
    [event_id] = await runtime.publisher.publish([BOOT])
    await receiver.wait_for(1, "/busy")
    delivery_id = await _delivery_of(runtime, event_id, created.subscription.id)

    async def retry_scheduled() -> timedelta:
        while True:
            delivery = (await runtime.deliveries.get(OPERATOR, delivery_id)).delivery
            if delivery.attempt_count == 1 and delivery.next_attempt_at is not None:
                return delivery.next_attempt_at - created_at
            await asyncio.sleep(0.05)

    assert await asyncio.wait_for(retry_scheduled(), 10) >= timedelta(seconds=60)


async def test_permanent_rejection_fails_at_once_without_retries(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe, dispatcher: Dispatcher
) -> None:
    created = await subscribe(receiver.on("/gone", always(410)), "BootNotification")
    [event_id] = await runtime.publisher.publish([BOOT])
    delivery_id = await _delivery_of(runtime, event_id, created.subscription.id)
    await _wait_for_status(runtime, delivery_id, DeliveryStatus.FAILED)
    assert len(receiver.on_path("/gone")) == 1


async def test_slow_receiver_does_not_hold_up_a_healthy_one(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe, dispatcher: Dispatcher
) -> None:
    await subscribe(receiver.on("/slow", always(200, delay_s=2.0)), "HardwareStatusNotification")
    await subscribe(receiver.on("/fast", always(200)), "NetworkStatusNotification")
    slow_events = [EXAMPLES["HardwareStatusNotification"]] * 100
    await runtime.publisher.publish(slow_events)
    await runtime.publisher.publish([EXAMPLES["NetworkStatusNotification"]] * 20)
    fast = await receiver.wait_for(20, "/fast")
    slow_done_before_fast = [r for r in receiver.on_path("/slow") if r.at <= fast[-1].at]
    # The healthy subscription's 20 deliveries all completed while the slow one had finished only its first
    # concurrent wave (at most its per-subscription limit), although its 100 events were published first.
    assert len(slow_done_before_fast) <= runtime.settings.worker_max_in_flight_per_subscription


async def test_an_attempt_that_ends_after_others_were_recorded_is_recorded_too(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe, dispatcher: Dispatcher
) -> None:
    slow = await subscribe(receiver.on("/slow", always(200, delay_s=0.5)), "HardwareStatusNotification")
    await subscribe(receiver.on("/fast", always(200)), "NetworkStatusNotification")
    [slow_event] = await runtime.publisher.publish([EXAMPLES["HardwareStatusNotification"]])
    # Recorded while the slow attempt is still out: the records written then must not take its place.
    await runtime.publisher.publish([EXAMPLES["NetworkStatusNotification"]] * 5)

    slow_delivery = await _delivery_of(runtime, slow_event, slow.subscription.id)
    await _wait_for_status(runtime, slow_delivery, DeliveryStatus.DELIVERED, timeout_s=10)
    [attempt] = (await runtime.deliveries.get(OPERATOR, slow_delivery)).attempts
    assert attempt.outcome == "delivered"


async def test_filter_decides_which_events_a_subscription_receives(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe, dispatcher: Dispatcher
) -> None:
    url = receiver.on("/only-1042", always(200))
    await subscribe(url, "HardwareStatusNotification", filter={"chargePointId": {"$in": [1042]}})
    wanted = {**EXAMPLES["HardwareStatusNotification"], "chargePointId": 1042}
    other = {**EXAMPLES["HardwareStatusNotification"], "chargePointId": 7}
    await runtime.publisher.publish([other, wanted, other])
    [request] = await receiver.wait_for(1, "/only-1042")
    assert orjson.loads(request.body)["chargePointId"] == 1042
    await asyncio.sleep(0.5)
    assert len(receiver.on_path("/only-1042")) == 1


async def test_disabled_subscription_waits_and_resumes_when_enabled(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe, dispatcher: Dispatcher
) -> None:
    created = await subscribe(receiver.on("/paused", always(200)), "BootNotification")
    [first] = await runtime.publisher.publish([BOOT])
    await receiver.wait_for(1, "/paused")
    await runtime.subscriptions.set_enabled(OPERATOR, created.subscription.id, False)
    await asyncio.sleep(0.2)
    received_before = len(receiver.on_path("/paused"))
    await runtime.publisher.publish([BOOT])  # disabled: gets no delivery at all
    await asyncio.sleep(0.5)
    assert len(receiver.on_path("/paused")) == received_before
    await runtime.subscriptions.set_enabled(OPERATOR, created.subscription.id, True)
    await runtime.publisher.publish([BOOT])
    await receiver.wait_for(received_before + 1, "/paused")
    assert first


async def test_retry_action_gives_a_failed_delivery_one_more_attempt(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe, dispatcher: Dispatcher
) -> None:
    url = receiver.on("/recovers", in_turn(Reply(500), Reply(500), Reply(500), Reply(500), Reply(202)))
    created = await subscribe(url, "BootNotification")
    [event_id] = await runtime.publisher.publish([BOOT])
    delivery_id = await _delivery_of(runtime, event_id, created.subscription.id)
    await _wait_for_status(runtime, delivery_id, DeliveryStatus.FAILED)
    await runtime.deliveries.retry(OPERATOR, delivery_id)
    await _wait_for_status(runtime, delivery_id, DeliveryStatus.DELIVERED)
    assert len(receiver.on_path("/recovers")) == 5


async def test_test_send_delivers_the_catalog_example_to_one_subscription(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe, dispatcher: Dispatcher
) -> None:
    created = await subscribe(receiver.on("/test", always(200)), "BootNotification", "SessionUpdateNotification")
    await subscribe(receiver.on("/other", always(200)), "SessionUpdateNotification")
    await runtime.deliveries.test_send(OPERATOR, created.subscription.id, "SessionUpdateNotification")
    [request] = await receiver.wait_for(1, "/test")
    assert orjson.loads(request.body) == EXAMPLES["SessionUpdateNotification"]
    await asyncio.sleep(0.3)
    assert receiver.on_path("/other") == []


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_several_workers_share_the_work_without_delivering_twice(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe
) -> None:
    await subscribe(receiver.on("/shared", always(200, delay_s=0.01)), "HardwareStatusNotification")
    await runtime.publisher.publish([EXAMPLES["HardwareStatusNotification"]] * 300)
    workers = [runtime.dispatcher() for _ in range(3)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(worker.run(stop)) for worker in workers]
    requests = await receiver.wait_for(300, "/shared")
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.gather(*tasks)
    ids = [request.headers["webhook-id"] for request in receiver.on_path("/shared")]
    assert len(ids) == len(set(ids)) == 300
    assert len(requests) == 300


async def test_a_dead_workers_lease_expires_and_another_worker_delivers(
    runtime: Runtime, receiver: Receiver, subscribe: Subscribe
) -> None:
    await subscribe(receiver.on("/lease", always(200)), "BootNotification")
    await runtime.publisher.publish([BOOT])
    now = utcnow()
    limits = {Via.WEBHOOK: 10, Via.KAFKA: 10}
    claimed = await runtime.delivery_store.claim_due_deliveries(
        ClaimRequest("wrk_dead", now, now + timedelta(seconds=1), 10, limits)
    )
    assert len(claimed) == 1  # claimed by a worker that then "dies" without recording anything
    survivor = runtime.dispatcher()
    try:
        assert await survivor.run_once() == 0  # still leased
        await asyncio.sleep(1.1)
        assert await survivor.run_once() == 1
        assert len(await receiver.wait_for(1, "/lease")) == 1
    finally:
        await survivor.aclose()
