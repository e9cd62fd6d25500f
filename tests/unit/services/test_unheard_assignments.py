"""A worker whose listener connected again gives back due, and claims, what was assigned to it and that it never took
up; it keeps what it holds, and ignores a NOTIFY of what it gave back that arrives late."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.dispatch.taken_leases import TakenLeases
from chargewire.services.worker_assignments import TakingAssignments, assignment_lease_s
from chargewire.store.delivery_records import ClaimedDelivery
from chargewire.store.delivery_writes import PublishLease
from chargewire.store.dialects.base import Announced
from chargewire.store.dialects.postgresql_announcements import Assignment

WORKER = "wrk_listening_again"
SUBSCRIPTION = "sub_1"


class Worker:
    """Takes up what it is given, as `Dispatcher` does, and records what it is told to claim."""

    def __init__(self) -> None:
        self.taken = TakenLeases()
        self.claims: list[Announced] = []
        self.claimed = asyncio.Event()

    def assigned(self, lease: PublishLease, deliveries: Sequence[ClaimedDelivery]) -> None:
        self.taken.add(lease)

    def wake_streams(self) -> bool:
        return False

    def heard(self, announced: Announced = ()) -> None:
        self.claims.append(announced)
        self.claimed.set()

    def taken_up(self, delivery_ids: Sequence[str]) -> set[str]:
        return self.taken.holding(delivery_ids)


def assignment(*delivery_ids: str) -> Assignment:
    until = utcnow() + timedelta(seconds=20)
    return Assignment(WORKER, until, [delivered(delivery_id) for delivery_id in delivery_ids])


def delivered(delivery_id: str) -> ClaimedDelivery:
    event_id = delivery_id.replace("dlv", "evt")
    return ClaimedDelivery(delivery_id, event_id, SUBSCRIPTION, "Boot", 0, None, b"{}", "cp-1", utcnow())


async def test_only_what_the_worker_never_took_up_is_given_back_and_a_late_notify_of_it_is_ignored() -> None:
    worker = Worker()
    released: list[tuple[str, list[str]]] = []

    async def release(worker_id: str, delivery_ids: Sequence[str], _now: datetime) -> None:
        released.append((worker_id, list(delivery_ids)))

    async def untouched(_now: datetime, _until: datetime) -> list[tuple[str, str]]:
        return [("dlv_1", SUBSCRIPTION), ("dlv_2", SUBSCRIPTION)]

    taking = TakingAssignments(worker, WORKER, release, 20.0)
    taking([assignment("dlv_1")])  # heard before the connection dropped: held
    taking.listening_again(untouched)
    await asyncio.wait_for(worker.claimed.wait(), 5)
    assert released == [(WORKER, ["dlv_2"])]
    assert worker.claims == [[("dlv_2", SUBSCRIPTION)]]

    taking([assignment("dlv_2", "dlv_3")])  # the lost NOTIFY after all, and a new one
    assert worker.taken_up(["dlv_1", "dlv_2", "dlv_3"]) == {"dlv_1", "dlv_3"}


def test_an_assignment_is_leased_for_its_attempt_and_a_start_window_never_beyond_worker_lease_s() -> None:
    assert assignment_lease_s(Settings(webhook_timeout_s=15, worker_lease_s=60)) == 23
    assert assignment_lease_s(Settings(webhook_timeout_s=15, worker_lease_s=2)) == 2
