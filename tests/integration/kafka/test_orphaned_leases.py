"""A Kafka stream whose holder died is handed back once the holder's stored heartbeat stood still while this
worker's moved on, on both backends; a holder that beats keeps it. The acceptance test
tests/acceptance/test_kafka_worker_crash_safety.py kills real workers."""

from __future__ import annotations

from datetime import timedelta

from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.kafka.orphaned_leases import OrphanedLeases
from chargewire.runtime import Runtime
from chargewire.store.worker_store import WorkerHeartbeat
from tests.support.manual_clock import ManualClock

BOOT = load_event_types()["BootNotification"].example
WORKER = "wrk_survivor"
STALE_S = 10.0


async def _beat(runtime: Runtime, worker_id: str) -> None:
    now = utcnow()
    await runtime.worker_store.beat(WorkerHeartbeat(worker_id, "host", 1, now, now, {}))


async def _held_stream(runtime: Runtime, holder: str) -> str:
    """A Kafka subscription with events to stream, its stream leased to `holder` for a minute."""
    owner = await runtime.tokens.create("owner", ["notifications:manage"])
    body = {"via": "kafka", "notifications": ["BootNotification"], "kafka": {"topic": "t", "brokers": ["127.0.0.1:9"]}}
    subscription_id = (await runtime.subscriptions.create(owner.token, body)).subscription.id
    await runtime.publisher.publish([BOOT])
    [stream] = await runtime.stream_store.ready_streams(utcnow())
    now = utcnow()
    assert await runtime.stream_store.lease(stream, holder, now, now + timedelta(minutes=1))
    return subscription_id


async def _looks_for(
    runtime: Runtime, orphans: OrphanedLeases, clock: ManualClock, seconds: int, holder_beats: bool
) -> int:
    """A look every 2 s for `seconds`, this worker beating before each (and the holder too if `holder_beats`);
    how many leases the looks handed back."""
    handed_back = 0
    for step in range(seconds // 2 + 1):
        clock.now = step * 2.0
        await _beat(runtime, WORKER)
        if holder_beats:
            await _beat(runtime, "wrk_holder")
        handed_back += await orphans.hand_back()
    return handed_back


async def test_a_dead_holders_stream_is_handed_back_once_its_heartbeat_stood_still_for_the_stale_time(
    runtime: Runtime,
) -> None:
    subscription_id = await _held_stream(runtime, "wrk_holder")
    await _beat(runtime, "wrk_holder")  # its last beat before it was killed
    clock = ManualClock(0.0)
    orphans = OrphanedLeases(runtime.stream_store, WORKER, STALE_S, clock)

    assert await _looks_for(runtime, orphans, clock, seconds=8, holder_beats=False) == 0
    assert await runtime.stream_store.ready_streams(utcnow(), WORKER) == []

    clock.now = STALE_S
    await _beat(runtime, WORKER)
    assert await orphans.hand_back() == 1
    [stream] = await runtime.stream_store.ready_streams(utcnow(), WORKER)
    assert stream.subscription_id == subscription_id
    now = utcnow()
    assert await runtime.stream_store.lease(stream, WORKER, now, now + timedelta(minutes=1))


async def test_a_holder_that_beats_keeps_its_stream(runtime: Runtime) -> None:
    await _held_stream(runtime, "wrk_holder")
    clock = ManualClock(0.0)
    orphans = OrphanedLeases(runtime.stream_store, WORKER, STALE_S, clock)

    assert await _looks_for(runtime, orphans, clock, seconds=30, holder_beats=True) == 0
    assert await runtime.stream_store.ready_streams(utcnow(), WORKER) == []


async def test_a_holder_that_never_beat_is_left_to_its_lease(runtime: Runtime) -> None:
    await _held_stream(runtime, "wrk_without_heartbeat")
    clock = ManualClock(0.0)
    orphans = OrphanedLeases(runtime.stream_store, WORKER, STALE_S, clock)

    assert await _looks_for(runtime, orphans, clock, seconds=30, holder_beats=False) == 0
