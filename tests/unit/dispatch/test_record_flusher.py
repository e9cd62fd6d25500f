"""The record flusher writes a quarter of the worker's room at once, gathers fewer, and stops when asked."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from chargewire.channels.base import AttemptResult
from chargewire.dispatch import record_flusher
from chargewire.dispatch.outcomes import record_for
from chargewire.dispatch.record_flusher import RecordFlusher
from chargewire.models import DeliveryStatus
from chargewire.store.delivery_records import AttemptRecord, ClaimedDelivery
from chargewire.store.delivery_store import DeliveryStore

NOW = datetime(2026, 12, 6, 5, 0, tzinfo=UTC)
HOURS_S = 3600.0  # a gathering window no test waits for


class _Written:
    """Stands in for the delivery store: keeps each write's records."""

    def __init__(self) -> None:
        self.writes: list[list[str]] = []

    async def record_attempts(self, records: Sequence[AttemptRecord]) -> None:
        self.writes.append([record.attempt.delivery_id for record in records])


def _records(count: int, first: int = 0) -> list[AttemptRecord]:
    result = AttemptResult(started_at=NOW, duration_ms=1.0, status_code=202)
    return [
        record_for(
            ClaimedDelivery(f"dlv_{n}", f"evt_{n}", "sub_1", "BootNotification", 0, None, b"{}", None, NOW),
            result,
            f"att_{n}",
            "wrk_1",
            None,
        )
        for n in range(first, first + count)
    ]


def _no_retry(_at: datetime) -> None:
    raise AssertionError("no record here is a retry")


async def _turns(count: int = 5) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


async def test_a_flush_starts_without_waiting_once_a_quarter_of_the_workers_room_is_pending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(record_flusher, "_FLUSH_INTERVAL_S", HOURS_S)
    store = _Written()
    recorded: list[int] = []
    flusher = RecordFlusher(cast(DeliveryStore, store), recorded.append, _no_retry, max_in_flight=8)
    stop = asyncio.Event()
    running = asyncio.create_task(flusher.run(stop))
    await _turns()

    flusher.add(_records(1))
    await _turns()
    assert store.writes == []  # one record waits for others to share its write

    flusher.add(_records(1, first=1))
    await _turns()
    assert store.writes == [["dlv_0", "dlv_1"]]
    assert recorded == [2]

    stop.set()
    await asyncio.wait_for(running, 5)


async def test_records_gathering_when_the_worker_stops_are_written_before_the_flusher_returns() -> None:
    store = _Written()
    flusher = RecordFlusher(cast(DeliveryStore, store), lambda _count: None, _no_retry)
    stop = asyncio.Event()
    running = asyncio.create_task(flusher.run(stop))
    flusher.add(_records(3))
    await _turns()

    stop.set()
    await asyncio.wait_for(running, 5)

    assert store.writes == [["dlv_0", "dlv_1", "dlv_2"]]


async def test_a_flush_that_writes_retries_says_when_the_first_of_them_falls_due() -> None:
    store = _Written()
    retries: list[datetime] = []
    flusher = RecordFlusher(cast(DeliveryStore, store), lambda _count: None, retries.append)
    later, sooner = NOW + timedelta(seconds=30), NOW + timedelta(seconds=5)
    delivered, *failed = _records(3)
    flusher.add([delivered, *(_retry(record, at) for record, at in zip(failed, (later, sooner), strict=True))])

    await flusher.flush()

    assert retries == [sooner]


async def test_a_flusher_with_nothing_pending_waits_without_a_timer_until_records_come() -> None:
    store = _Written()
    flusher = RecordFlusher(cast(DeliveryStore, store), lambda _count: None, _no_retry)
    stop = asyncio.Event()
    running = asyncio.create_task(flusher.run(stop))
    await _turns()
    loop = asyncio.get_running_loop()

    assert [timer for timer in loop._scheduled if not timer.cancelled()] == []  # type: ignore[attr-defined]

    stop.set()
    await asyncio.wait_for(running, 5)


def _retry(record: AttemptRecord, at: datetime) -> AttemptRecord:
    return replace(record, status=DeliveryStatus.PENDING, next_attempt_at=at)
