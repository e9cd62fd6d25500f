"""Expiry on both backends: what goes once it is old enough, and what must never go (docs/retention.md).

Time is moved forward by handing expiry a later `now`, not by waiting: rows are written at the real time.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from chargewire.clock import utcnow
from chargewire.dispatch.expiry import Expirer
from chargewire.models import DeliveryStatus, Via
from chargewire.runtime import Runtime
from chargewire.store.dialects.upkeep import TableSize, Upkeep
from chargewire.store.expiry_rules import Cutoffs
from chargewire.store.retention import RetentionPolicy, RetentionStore
from chargewire.store.tables import attempts, deliveries, events, kafka_streams, stream_pauses
from tests.support.history import boots, count_in, publish_with_outcome, subscribe_to_boots

POLICY = RetentionPolicy(delivered=timedelta(days=30), failed=timedelta(days=90), batch_size=2)
DELIVERED_EXPIRED = timedelta(days=31)
FAILED_EXPIRED = timedelta(days=91)


async def _expire_at(runtime: Runtime, later: timedelta) -> dict[str, int]:
    return await runtime.retention.expire(utcnow() + later, POLICY)


async def test_delivered_history_older_than_its_retention_is_removed_with_attempts_and_events(
    runtime: Runtime,
) -> None:
    await subscribe_to_boots(runtime)
    event_ids = await publish_with_outcome(runtime, 5, DeliveryStatus.DELIVERED)

    removed = await _expire_at(runtime, DELIVERED_EXPIRED)

    assert removed == {"events": 5, "deliveries": 5, "attempts": 5, "attempt_batches": 0}
    assert await count_in(runtime, events.c.id, event_ids) == 0
    assert await count_in(runtime, deliveries.c.event_id, event_ids) == 0


async def test_delivered_history_inside_its_retention_is_kept(runtime: Runtime) -> None:
    await subscribe_to_boots(runtime)
    event_ids = await publish_with_outcome(runtime, 3, DeliveryStatus.DELIVERED)

    removed = await _expire_at(runtime, timedelta(days=29))

    assert sum(removed.values()) == 0
    assert await count_in(runtime, deliveries.c.event_id, event_ids) == 3


async def test_a_pending_delivery_and_its_event_are_never_removed_however_old(runtime: Runtime) -> None:
    await subscribe_to_boots(runtime)
    due = await runtime.publisher.publish(boots(3))  # pending, due now, never attempted

    await _expire_at(runtime, timedelta(days=400))

    assert await count_in(runtime, deliveries.c.event_id, due) == 3
    assert await count_in(runtime, events.c.id, due) == 3


async def test_a_retrying_delivery_keeps_its_attempts_and_event_however_old(runtime: Runtime) -> None:
    await subscribe_to_boots(runtime)
    retry_at = utcnow() + timedelta(hours=5)
    retrying = await publish_with_outcome(runtime, 3, DeliveryStatus.PENDING, next_attempt_at=retry_at)

    await _expire_at(runtime, timedelta(days=400))

    assert await count_in(runtime, deliveries.c.event_id, retrying) == 3
    assert await count_in(runtime, events.c.id, retrying) == 3
    async with runtime.database.reading() as connection:
        kept = select(func.count()).select_from(attempts)
        assert (await connection.execute(kept)).scalar_one() == 3


async def test_a_failed_delivery_inside_the_resend_window_keeps_its_event_past_the_delivered_retention(
    runtime: Runtime,
) -> None:
    subscription_id = await subscribe_to_boots(runtime)
    failed = await publish_with_outcome(runtime, 3, DeliveryStatus.FAILED)

    removed = await _expire_at(runtime, DELIVERED_EXPIRED)

    assert sum(removed.values()) == 0
    assert await count_in(runtime, deliveries.c.event_id, failed) == 3
    assert await count_in(runtime, events.c.id, failed) == 3
    resent = await runtime.delivery_store.requeue_failed(subscription_id, ["BootNotification"], None, None, utcnow())
    assert resent == 3  # still resendable


async def test_a_failed_delivery_past_the_resend_window_is_removed_with_its_event(runtime: Runtime) -> None:
    await subscribe_to_boots(runtime)
    failed = await publish_with_outcome(runtime, 3, DeliveryStatus.FAILED)

    removed = await _expire_at(runtime, FAILED_EXPIRED)

    assert removed["deliveries"] == 3
    assert await count_in(runtime, events.c.id, failed) == 0


async def test_an_event_with_one_delivery_delivered_and_one_failed_stays_while_the_failed_one_is_kept(
    runtime: Runtime,
) -> None:
    delivered_to, _failed_to = await subscribe_to_boots(runtime), await subscribe_to_boots(runtime)
    event_ids = await publish_with_outcome(runtime, 2, DeliveryStatus.FAILED)
    async with runtime.database.transaction() as connection:
        await connection.execute(
            update(deliveries).where(deliveries.c.subscription_id == delivered_to).values(status="delivered")
        )

    removed = await _expire_at(runtime, DELIVERED_EXPIRED)

    assert removed["deliveries"] == 2
    assert await count_in(runtime, events.c.id, event_ids) == 2


async def test_an_event_a_kafka_stream_has_still_to_read_is_kept_and_one_behind_it_is_removed(
    runtime: Runtime,
) -> None:
    subscription_id = await subscribe_to_boots(runtime, Via.KAFKA)
    event_ids = await runtime.publisher.publish(boots(6))
    seqs = await _seqs(runtime, event_ids)
    await _move_stream(runtime, subscription_id, seqs[2])  # read the first three, not the last three

    removed = await _expire_at(runtime, DELIVERED_EXPIRED)

    assert removed["events"] == 3
    assert await count_in(runtime, events.c.id, event_ids[3:]) == 3


async def test_events_inside_a_kafka_streams_pause_are_not_kept_for_it(runtime: Runtime) -> None:
    subscription_id = await subscribe_to_boots(runtime, Via.KAFKA)
    event_ids = await runtime.publisher.publish(boots(6))
    seqs = await _seqs(runtime, event_ids)
    await _move_stream(runtime, subscription_id, seqs[0] - 1)  # has read none of them
    async with runtime.database.transaction() as connection:  # disabled over the middle two
        await connection.execute(
            insert(stream_pauses).values(subscription_id=subscription_id, from_seq=seqs[1], to_seq=seqs[3])
        )

    await _expire_at(runtime, DELIVERED_EXPIRED)

    kept = [event_id for event_id in event_ids if await count_in(runtime, events.c.id, [event_id])]
    assert kept == [event_ids[0], event_ids[1], event_ids[4], event_ids[5]]


async def test_attempts_left_by_a_deleted_subscription_are_removed_once_past_the_delivered_retention(
    runtime: Runtime,
) -> None:
    subscription_id = await subscribe_to_boots(runtime)
    await publish_with_outcome(runtime, 3, DeliveryStatus.FAILED)
    await runtime.subscription_store.delete_subscription(subscription_id)  # its deliveries go by cascade

    assert (await _expire_at(runtime, timedelta(days=29)))["attempts"] == 0
    assert (await _expire_at(runtime, DELIVERED_EXPIRED))["attempts"] == 3


async def test_only_one_process_holds_the_expiry_lease_until_it_runs_out(runtime: Runtime) -> None:
    now = utcnow()
    until = now + timedelta(minutes=15)

    assert await runtime.retention.take_lease("wrk_a", now, until)
    assert not await runtime.retention.take_lease("wrk_b", now, until)
    assert await runtime.retention.take_lease("wrk_a", now, until)  # renewed by its holder
    assert await runtime.retention.take_lease("wrk_b", until + timedelta(seconds=1), until + timedelta(minutes=15))


async def test_an_expiry_run_records_what_it_removed_and_the_sizes_and_oldest_rows_it_measured(
    runtime: Runtime,
) -> None:
    await subscribe_to_boots(runtime)
    await publish_with_outcome(runtime, 4, DeliveryStatus.DELIVERED)
    kept = await publish_with_outcome(runtime, 1, DeliveryStatus.FAILED)
    later = utcnow() + DELIVERED_EXPIRED
    expirer = Expirer(runtime.retention, POLICY, "wrk_a", interval_s=60, clock=lambda: later)

    run = await expirer.run_once()

    recorded = await runtime.retention.last_run()
    assert run is not None
    assert recorded.removed == run.removed
    assert recorded.removed["deliveries"] == 4
    assert recorded.error is None
    assert recorded.started_at == later
    sizes = {size.table: size for size in recorded.tables}
    assert sizes["events"].bytes > 0
    assert sizes["deliveries"].bytes > 0
    oldest_event = sizes["events"].oldest
    assert oldest_event is not None
    assert oldest_event == await _received_at(runtime, kept[0])
    other = Expirer(runtime.retention, POLICY, "wrk_b", interval_s=60, clock=lambda: later)
    assert await other.run_once() is None  # wrk_a holds the lease


async def _seqs(runtime: Runtime, event_ids: list[str]) -> list[int]:
    async with runtime.database.reading() as connection:
        query = select(events.c.seq).where(events.c.id.in_(event_ids)).order_by(events.c.seq)
        return [int(seq) for seq in (await connection.scalars(query)).all()]


async def _move_stream(runtime: Runtime, subscription_id: str, position: int) -> None:
    async with runtime.database.transaction() as connection:
        await connection.execute(
            update(kafka_streams).where(kafka_streams.c.subscription_id == subscription_id).values(position=position)
        )


async def _received_at(runtime: Runtime, event_id: str) -> datetime:
    async with runtime.database.reading() as connection:
        query = select(events.c.received_at).where(events.c.id == event_id)
        return (await connection.execute(query)).scalar_one()  # type: ignore[no-any-return]


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_sqlite_gives_the_pages_expiry_freed_back_so_the_file_shrinks(runtime: Runtime) -> None:
    await runtime.retention.upkeep.reclaim()  # the first run converts the new file to incremental vacuum
    assert await _pragma(runtime, "auto_vacuum") == 2
    await subscribe_to_boots(runtime)
    for _ in range(5):
        await publish_with_outcome(runtime, 200, DeliveryStatus.DELIVERED)
    await _expire_at(runtime, DELIVERED_EXPIRED)
    pages_before = await _pragma(runtime, "page_count")
    assert await _pragma(runtime, "freelist_count") > 0

    await runtime.retention.upkeep.reclaim()

    assert await _pragma(runtime, "freelist_count") == 0
    assert await _pragma(runtime, "page_count") < pages_before


async def _pragma(runtime: Runtime, name: str) -> int:
    """A pragma read on a connection of its own: a pooled one reports auto_vacuum as it was when it opened."""
    assert runtime.database.sqlite_file is not None
    with contextlib.closing(sqlite3.connect(runtime.database.sqlite_file)) as connection:
        return int(connection.execute(f"PRAGMA {name}").fetchone()[0])


class _BrokenUpkeep:
    """Measures like the real one, but giving space back fails."""

    def __init__(self, real: Upkeep) -> None:
        self._real = real

    async def table_sizes(self, connection: AsyncConnection) -> list[TableSize]:
        return await self._real.table_sizes(connection)

    async def drop_partitions(self, now: datetime, cutoffs: Cutoffs, removed: Counter[str]) -> None:
        await self._real.drop_partitions(now, cutoffs, removed)

    async def reclaim(self) -> int:
        raise RuntimeError("disk says no")


async def test_an_expiry_run_that_fails_is_recorded_with_its_error_and_raised_for_the_supervisor(
    runtime: Runtime,
) -> None:
    store = RetentionStore(runtime.database, _BrokenUpkeep(runtime.retention.upkeep))
    expirer = Expirer(store, POLICY, "wrk_a", interval_s=60)

    with pytest.raises(RuntimeError, match="disk says no"):
        await expirer.run_once()

    assert (await runtime.retention.last_run()).error == "RuntimeError: disk says no"
