"""How a Kafka stream orders its stages: batches are recorded in log order, one after the other, while reading
and producing go on; a batch whose recording fails leaves every batch after it unrecorded."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime

from chargewire.channels.base import OrderFence
from chargewire.config import Settings
from chargewire.dispatch.targets import DeliveryTarget
from chargewire.kafka.streamer import KafkaStreamer
from chargewire.kafka.streams import LeaseLost, Stream, StreamLook, StreamRead
from chargewire.models import Attempt, DeliveryStatus, KafkaTarget, Subscription, Via
from chargewire.store.delivery_records import AttemptRecord, ClaimedDelivery

NOW = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)
SUBSCRIPTION = Subscription(
    "sub_a", Via.KAFKA, ("BootNotification",), "tok_a", 2, NOW, NOW, kafka=KafkaTarget(topic="t", brokers=("b:9092",))
)
BATCH = 2


class Log:
    """A stream store over an in-memory log of `length` events, recording the batches written to it."""

    def __init__(self, length: int, refuse: tuple[int, int] | None = None) -> None:
        self.length = length
        self.refuse = refuse  # the batch whose recording finds the lease lost
        self.reads = 0
        self.fourth_read = asyncio.Event()
        self.recorded: list[tuple[int, int]] = []
        self.recording_open = asyncio.Event()
        self.recording_open.set()

    async def look(self, _now: datetime, _worker_id: str | None = None) -> StreamLook:
        return StreamLook([Stream(SUBSCRIPTION.id, 0)], streams_exist=True)

    async def holders_heartbeats(self, _worker_id: str, _now: datetime) -> tuple[object, dict[str, object]]:
        return None, {}  # no other worker holds a stream

    async def lease(self, *_args: object) -> bool:
        return True

    async def read(self, stream: Stream, _names: Sequence[str], after: int, limit: int) -> StreamRead:
        self.reads += 1
        if self.reads == 4:
            self.fourth_read.set()
        upto = min(after + limit, self.length)
        deliveries = [_delivery(seq) for seq in range(after + 1, upto + 1)]
        return StreamRead(deliveries, upto, at_end=upto >= self.length)

    async def record_batch(
        self, _stream: Stream, _worker: str, moves: tuple[int, int], _attempted: object, _until: object
    ) -> None:
        await self.recording_open.wait()
        if moves == self.refuse:
            raise LeaseLost(SUBSCRIPTION.id)
        self.recorded.append(moves)

    async def release(self, *_args: object) -> None:
        return None


class Targets:
    async def targets(self, subscription_ids: Collection[str]) -> Mapping[str, DeliveryTarget]:
        return {SUBSCRIPTION.id: DeliveryTarget(SUBSCRIPTION, "token", ("whsec_a2V5",))}


def _delivery(seq: int) -> ClaimedDelivery:
    return ClaimedDelivery(f"dlv_{seq}", f"evt_{seq}", SUBSCRIPTION.id, "BootNotification", 0, None, b"{}", None, NOW)


async def _delivered(batch: list[ClaimedDelivery], _target: DeliveryTarget, _fence: OrderFence) -> list[AttemptRecord]:
    # The first batch is acknowledged last: acks may come in any order.
    await asyncio.sleep(0.02 if batch[0].id == "dlv_1" else 0)
    return [
        AttemptRecord(
            Attempt(f"att_{d.id}", d.id, 1, NOW, 1.0, "delivered"),
            d.subscription_id,
            "wrk",
            DeliveryStatus.DELIVERED,
            None,
            None,
        )
        for d in batch
    ]


def _streamer(log: Log) -> KafkaStreamer:
    settings = Settings(database_url="sqlite+aiosqlite:///:memory:", kafka_stream_batch_size=BATCH)
    return KafkaStreamer(settings, log, Targets(), _delivered, "wrk")  # type: ignore[arg-type]


async def test_batches_are_recorded_in_log_order_even_when_a_later_one_is_acknowledged_first() -> None:
    log = Log(length=10)

    assert await _streamer(log).run_once() == 10

    assert log.recorded == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]


async def test_a_batch_whose_recording_fails_leaves_every_batch_after_it_unrecorded() -> None:
    log = Log(length=10, refuse=(2, 4))

    assert await _streamer(log).run_once() == 0  # the run ends as a lost lease

    assert log.recorded == [(0, 2)]


async def test_reading_goes_on_while_an_earlier_batch_is_still_being_recorded() -> None:
    log = Log(length=20)
    log.recording_open.clear()
    running = asyncio.create_task(_streamer(log).run_once())

    # Batches await their acks and others wait to be recorded: the fourth read does not wait for the first.
    async with asyncio.timeout(5):
        await log.fourth_read.wait()
    assert log.recorded == []
    log.recording_open.set()

    assert await running == 20
    assert log.recorded == [(start, start + 2) for start in range(0, 20, 2)]
