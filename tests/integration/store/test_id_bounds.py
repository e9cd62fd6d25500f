"""The id bounds that let PostgreSQL skip old day partitions leave out no row, on both stores, even when ids
were made by clocks that differ by hours or a little before their rows were written."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.ids import first_id_at, made_at_ms
from chargewire.models import Attempt, DeliveryStatus, Via
from chargewire.runtime import Runtime
from chargewire.store.delivery_claims import ClaimRequest
from chargewire.store.delivery_records import AttemptRecord
from tests.support.history import subscribe_to_boots

BOOT = load_event_types()["BootNotification"].example
WORKER = "wrk_bounds"
HOURS_MS = 3_600_000


async def _publish_made_earlier(runtime: Runtime, charge_point: int, earlier_than: str, hours: int) -> None:
    """Publish one event whose id was made `hours` before the id `earlier_than` (another process's clock)."""
    batch = runtime.publisher.prepare([{**BOOT, "chargePointId": charge_point}])
    made = first_id_at("evt", made_at_ms(earlier_than) - hours * HOURS_MS)
    await runtime.publisher.write(replace(batch, events=replace(batch.events, ids=[made])))


async def test_a_deliverys_attempts_are_listed_when_one_was_made_by_a_clock_hours_behind(runtime: Runtime) -> None:
    await subscribe_to_boots(runtime, Via.WEBHOOK)
    await runtime.publisher.publish([BOOT])
    now = utcnow()
    [claimed] = await runtime.delivery_store.claim_due_deliveries(
        ClaimRequest(WORKER, now, now + timedelta(minutes=1), 10, {Via.WEBHOOK: 10, Via.KAFKA: 10})
    )
    behind = first_id_at("att", made_at_ms(claimed.id) - 5 * HOURS_MS)
    attempt = Attempt(behind, claimed.id, 1, now, 1.0, "delivered", 200)
    record = AttemptRecord(attempt, claimed.subscription_id, WORKER, DeliveryStatus.DELIVERED, None, None)
    await runtime.delivery_store.record_attempts([record])

    assert [listed.id for listed in await runtime.delivery_store.list_attempts(claimed.id)] == [behind]
    assert await runtime.delivery_store.list_attempts("dlv_not-an-id") == []


async def test_a_stream_reads_an_event_numbered_after_its_last_read_though_its_id_was_made_hours_earlier(
    runtime: Runtime,
) -> None:
    subscription_id = await subscribe_to_boots(runtime, Via.KAFKA)
    await runtime.publisher.publish([{**BOOT, "chargePointId": 1}])
    [stream] = await runtime.stream_store.ready_streams(utcnow())
    first = await runtime.stream_store.read(stream, ["BootNotification"], stream.position, 100)
    await _publish_made_earlier(runtime, 2, first.deliveries[-1].event_id, hours=5)

    read = await runtime.stream_store.read(stream, ["BootNotification"], first.position, 100)

    assert [delivery.entity_id for delivery in read.deliveries] == ["2"]
    assert read.deliveries[0].subscription_id == subscription_id
