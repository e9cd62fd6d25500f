"""A record the database refuses fails alone: the rest of its batch is recorded, on both databases."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.ids import new_id
from chargewire.models import DeliveryStatus, Via
from chargewire.runtime import Runtime
from chargewire.services.subscriptions import OPERATOR
from chargewire.store.delivery_records import AttemptRecord, ClaimedDelivery
from tests.support.factories import delivered_record_factory

BOOT = load_event_types()["BootNotification"].example
WORKER = "wrk_test"
# A lone surrogate in a header the channel built: not made storable (request headers are chargewire's own),
# so the JSON encoder refuses it on either database.
UNENCODABLE = {"X-Broken": "\udcff"}


async def _claimed(runtime: Runtime, count: int) -> list[ClaimedDelivery]:
    owner = await runtime.tokens.create("refusals", ["notifications:manage"])
    body = {"via": "webhook", "notifications": ["BootNotification"], "webhook": {"callbackUrl": "http://127.0.0.1:9/"}}
    await runtime.subscriptions.create(owner.token, body)
    await runtime.publisher.publish([BOOT] * count)
    now = utcnow()
    return await runtime.delivery_store.claim_due_deliveries(
        WORKER, now, now + timedelta(minutes=1), count, {Via.WEBHOOK: count}
    )


def _delivered(delivery: ClaimedDelivery, request_headers: dict[str, str] | None = None) -> AttemptRecord:
    return delivered_record_factory(delivery, WORKER, request_headers)


async def test_a_refused_record_is_written_bare_and_the_rest_of_its_batch_in_full(runtime: Runtime) -> None:
    claimed = await _claimed(runtime, 5)
    records = [_delivered(delivery, UNENCODABLE if index == 2 else None) for index, delivery in enumerate(claimed)]

    await runtime.delivery_store.record_attempts(records)

    for index, delivery in enumerate(claimed):
        detail = await runtime.deliveries.get(OPERATOR, delivery.id)
        assert detail.delivery.status is DeliveryStatus.DELIVERED
        [attempt] = detail.attempts
        expected = ({}, None) if index == 2 else ({"X-Fine": "yes"}, "ok")
        assert (attempt.request_headers, attempt.response_body) == expected


async def test_a_record_whose_delivery_is_gone_is_given_up_and_the_rest_recorded(runtime: Runtime) -> None:
    claimed = await _claimed(runtime, 3)
    ghost = replace(claimed[0], id=new_id("dlv"))

    await runtime.delivery_store.record_attempts([_delivered(delivery) for delivery in [*claimed, ghost]])

    for delivery in claimed:
        assert (await runtime.deliveries.get(OPERATOR, delivery.id)).delivery.status is DeliveryStatus.DELIVERED
