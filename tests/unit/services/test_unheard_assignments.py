"""A worker whose listener connected again gives back due, and claims, what was assigned to it and that it never took
up; it keeps what it took up, and ignores a NOTIFY of what it gave back that arrives late."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.services.worker_assignments import TakingAssignments, assignment_lease_s
from chargewire.store.delivery_records import ClaimedDelivery
from chargewire.store.delivery_writes import PublishLease
from chargewire.store.dialects.base import Announced
from chargewire.store.dialects.postgresql_announcements import Assignment

WORKER = "wrk_listening_again"
SUBSCRIPTION = "sub_1"
DEFAULTS = Settings(webhook_timeout_s=15, worker_lease_s=60)


class Worker:
    """Records what it takes up and what it is told to claim."""

    def __init__(self) -> None:
        self.taken: list[str] = []
        self.claims: list[Announced] = []
        self.claimed = asyncio.Event()

    def assigned(self, lease: PublishLease, deliveries: Sequence[ClaimedDelivery]) -> None:
        self.taken.extend(delivery.id for delivery in deliveries)

    def wake_streams(self) -> bool:
        return False

    def heard(self, announced: Announced = ()) -> None:
        self.claims.append(announced)
        self.claimed.set()


class Store:
    """What the database holds as assigned to the worker and untouched, and what it was told to give back."""

    def __init__(self, *untouched: str) -> None:
        self.untouched = [(delivery_id, SUBSCRIPTION) for delivery_id in untouched]
        self.longest: list[timedelta] = []
        self.released: list[tuple[str, list[str]]] = []

    async def read(self, _now: datetime, _until: datetime, longest: timedelta) -> list[tuple[str, str]]:
        self.longest.append(longest)
        return self.untouched

    async def release(self, worker_id: str, delivery_ids: Sequence[str], _now: datetime) -> None:
        self.released.append((worker_id, list(delivery_ids)))


def assignment(*delivery_ids: str) -> Assignment:
    until = utcnow() + timedelta(seconds=20)
    return Assignment(WORKER, until, [delivered(delivery_id) for delivery_id in delivery_ids])


def delivered(delivery_id: str) -> ClaimedDelivery:
    event_id = delivery_id.replace("dlv", "evt")
    return ClaimedDelivery(delivery_id, event_id, SUBSCRIPTION, "Boot", 0, None, b"{}", "cp-1", utcnow())


async def test_only_what_the_worker_never_took_up_is_given_back_and_a_late_notify_of_it_is_ignored() -> None:
    worker, store = Worker(), Store("dlv_1", "dlv_2")
    taking = TakingAssignments(worker, WORKER, store.release, DEFAULTS)
    taking([assignment("dlv_1")])  # heard before the connection dropped: held
    taking.listening_again(store.read)
    await asyncio.wait_for(worker.claimed.wait(), 5)
    assert store.released == [(WORKER, ["dlv_2"])]
    assert worker.claims == [[("dlv_2", SUBSCRIPTION)]]
    # Longer than an assignment's lease (23 s), shorter than a hand-off's (60 s).
    assert store.longest == [timedelta(seconds=41.5)]

    taking([assignment("dlv_2", "dlv_3")])  # the lost NOTIFY after all, and a new one
    assert worker.taken == ["dlv_1", "dlv_3"]


async def test_nothing_is_given_back_where_a_hand_off_and_an_assignment_are_leased_alike() -> None:
    worker, store = Worker(), Store("dlv_1")
    taking = TakingAssignments(worker, WORKER, store.release, Settings(webhook_timeout_s=15, worker_lease_s=5))
    taking.listening_again(store.read)
    await asyncio.sleep(0)
    assert store.longest == store.released == []


def test_an_assignment_is_leased_for_its_attempt_and_a_start_window_never_beyond_worker_lease_s() -> None:
    assert assignment_lease_s(DEFAULTS) == 23
    assert assignment_lease_s(Settings(webhook_timeout_s=15, worker_lease_s=2)) == 2
