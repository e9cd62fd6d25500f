"""Assignments: a process without a worker writes a publish's new webhook deliveries leased to one listening worker
of another process, and its NOTIFY carries them whole (`postgresql_announcements.Assignment`), so that their first
attempt needs no claim statement there, as a `serve`'s own worker needs none for a hand-off (`group_commit`). A
publish written in one statement sends that NOTIFY itself (`postgresql_publish`); one written in a transaction
leaves it to the notifier after its commit (`take`).

Which worker: those whose wake-up listener is connected now and whose heartbeat is recent
(`postgresql_wakeups.listening_workers`, read at most every `_REFRESH_S`, in a task of its own, never awaited by a
publish); publishes go to them in turn, each whole to one (webhook deliveries keep no order between them, so two
workers share even one subscription's load, as their claims did). A killed worker's connections close with it, so
within about `_REFRESH_S` nothing more is assigned to it.

The lease (`assignment_lease_s`): a worker starts a delivery only while its lease keeps room for the attempt and
its record (`subscription_queues.attempt_bound_s`), and hands back, due, what waited
longer. An assignment's lease is that room and `_START_WINDOW_S` more, not `worker_lease_s`: the worker may start
it only within that window after the publish, so once the lease runs out no attempt of it can be in flight, and any
worker's claim takes it (a minute, before, after the death of the worker it was assigned to). Nothing shorter is
safe without a write per attempt: the database cannot tell a delivery a dead worker had started from one it had not.
The lease in the row still protects against double delivery: no other worker's claim takes a leased row, and what
its worker hears of late (a slow NOTIFY, a busy worker) it hands back due instead of starting.

A listener that connects again has missed the NOTIFYs sent while it was away (`TakingAssignments.listening_again`):
the worker reads what publishes assigned to it and nothing touched since, gives back due what it never took up (it
keeps the assignments it took up while their leases last), ignores any NOTIFY of those that arrives late, and
claims them. A hand-off of its own process's publish is told apart by its longer lease (`worker_lease_s`); where
that is not longer by `_LEASES_APART_S`, nothing is given back, and what was missed waits for its lease, as short.

No worker known (none listening, or the list older than `_STALE_S`: the database was unreachable), or a publish of
more than `_MAX_ASSIGNED` deliveries: the deliveries are written due, and announced, as before. Deliveries too
large for a NOTIFY are written due (one statement) or made due after the commit (a transaction), and announced.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.dispatch.subscription_queues import attempt_bound_s
from chargewire.store.delivery_records import ClaimedDelivery
from chargewire.store.delivery_writes import NewDelivery, PublishLease
from chargewire.store.dialects.base import Announced
from chargewire.store.dialects.postgresql_announcements import Assignment
from chargewire.store.dialects.postgresql_wakeups import UntouchedAssignments, WakeNotifier

logger = logging.getLogger(__name__)

# How often the list of listening workers is read again, and after how long without a fresh read it is not used.
_REFRESH_S = 1.0
_STALE_S = 5.0
# A worker's heartbeat is recent within this many of its intervals (`dispatch.heartbeat`, every 2 s).
_BEAT_WITHIN_S = 6.0
# A publish of more deliveries goes as before: its NOTIFY would carry too many events' bytes.
_MAX_ASSIGNED = 16
# How long after the publish its worker may still start an assigned delivery: it hears of it within milliseconds.
_START_WINDOW_S = 3.0
# How much longer a hand-off's lease must be than an assignment's for a reconnecting listener to tell them apart.
_LEASES_APART_S = 2.0
# Assignments taken up whose leases have run out are forgotten every this many: a clock read per one cost more.
_FORGET_EVERY = 64


def assignment_lease_s(settings: Settings) -> float:
    """How long an assigned delivery is leased to its worker: room for its attempt started within the start
    window, or `worker_lease_s` if that is shorter."""
    return min(settings.worker_lease_s, attempt_bound_s(settings) + _START_WINDOW_S)


ListeningWorkers = Callable[[datetime], Awaitable[list[str]]]
ReleaseLeases = Callable[[str, Sequence[str], datetime], Awaitable[None]]


class WorkerAssignments:
    """A publisher's hand-off to workers of other processes (`group_commit.HandOff`), by NOTIFY."""

    def __init__(
        self, workers: ListeningWorkers, notifier: WakeNotifier, release: ReleaseLeases, lease_s: float
    ) -> None:
        self._workers = workers
        self._notifier = notifier
        self._release = release
        self._lease = timedelta(seconds=lease_s)
        self._listening: list[str] = []
        self._read_at = -_STALE_S  # monotonic time of the last read of the list that succeeded
        self._asked_at = -_REFRESH_S
        self._reading: asyncio.Task[None] | None = None
        self._turn = 0  # publishes go to the listening workers in turn

    def reserve(self, deliveries: Sequence[NewDelivery]) -> PublishLease | None:
        """The lease to write `deliveries` under, to the next listening worker in turn, or None (written due)."""
        listening = self._known_workers()
        if not listening or len(deliveries) > _MAX_ASSIGNED:
            return None
        self._turn += 1
        return PublishLease(
            listening[self._turn % len(listening)],
            utcnow() + self._lease,
            frozenset(d.id for d in deliveries),
            tuple(d.subscription_id for d in deliveries),
            elsewhere=True,
        )

    def take(self, lease: PublishLease, deliveries: Sequence[ClaimedDelivery]) -> None:
        """Send `deliveries`, now committed leased to their worker, to it in a NOTIFY (a publish written in one
        statement sent it itself); one too large for a NOTIFY is made due now instead, and announced."""
        assignment = Assignment(lease.worker_id, lease.until, deliveries)
        if self._notifier.fits(assignment):
            self._notifier.assign(assignment)
            return
        fitting = [d for d in deliveries if self._notifier.fits(Assignment(lease.worker_id, lease.until, [d]))]
        for delivery in fitting:
            self._notifier.assign(Assignment(lease.worker_id, lease.until, [delivery]))
        too_large = [d for d in deliveries if d not in fitting]
        if too_large:
            asyncio.get_running_loop().create_task(self._make_due(lease.worker_id, too_large))

    def cancel(self, lease: PublishLease) -> None:
        """Nothing was reserved in this process: the publish did not commit, so nothing is leased."""

    async def _make_due(self, worker_id: str, deliveries: Sequence[ClaimedDelivery]) -> None:
        try:
            await self._release(worker_id, [d.id for d in deliveries], utcnow())
        except Exception as error:
            logger.warning("could not make %d large deliveries due (%s); their leases run out", len(deliveries), error)
            return
        self._notifier.request([(d.id, d.subscription_id) for d in deliveries])

    def _known_workers(self) -> list[str]:
        """The listening workers as last read, read again in the background when due; [] when too old to use."""
        now = time.monotonic()
        if now - self._asked_at >= _REFRESH_S and (self._reading is None or self._reading.done()):
            self._asked_at = now
            self._reading = asyncio.get_running_loop().create_task(self._read())
        return self._listening if now - self._read_at < _STALE_S else []

    async def read_workers(self) -> list[str]:
        """Read the listening workers now; those publishes assign to from now on."""
        listening = await self._workers(utcnow() - timedelta(seconds=_BEAT_WITHIN_S))
        self._listening, self._read_at = listening, time.monotonic()
        return listening

    async def _read(self) -> None:
        try:
            await self.read_workers()
        except Exception as error:
            # Kept until it is too old to use (`_STALE_S`); meanwhile the next publish asks again.
            logger.debug("could not read the listening workers (%s)", error)


class AssignedWorker(Protocol):
    """A worker that takes what was assigned to it (`Dispatcher`)."""

    def assigned(self, lease: PublishLease, deliveries: Sequence[ClaimedDelivery]) -> None:
        """Send `deliveries`, leased to it by `lease`, as if claimed."""
        ...

    def wake_streams(self) -> bool:
        """Look for ready Kafka streams now."""
        ...

    def heard(self, announced: Announced = ()) -> None:
        """Claim the `announced` deliveries, made due, now."""
        ...


class TakingAssignments:
    """What a worker does with the assignments its listener hears (`postgresql_wakeups.AssignedWaiter`)."""

    def __init__(self, worker: AssignedWorker, worker_id: str, release: ReleaseLeases, settings: Settings) -> None:
        self._worker = worker
        self._worker_id = worker_id
        self._release = release
        lease_s = assignment_lease_s(settings)
        self._lease = timedelta(seconds=lease_s)
        # The longest an assignment's lease runs from its publish: between it and a hand-off's (see the module).
        apart_s = settings.worker_lease_s - lease_s
        self._longest = timedelta(seconds=lease_s + apart_s / 2) if apart_s >= _LEASES_APART_S else None
        # The ids of the assignments taken up, with their leases' ends, while they last.
        self._taken: deque[tuple[datetime, frozenset[str]]] = deque()
        # Deliveries given back after a reconnect, until their leases would have run out: a NOTIFY of one that
        # arrives late is not taken up (another worker may have claimed it).
        self._given_up: dict[str, datetime] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, mine: Sequence[Assignment]) -> None:
        """Send what was assigned to this worker; as a publish whose deliveries all went to another worker may have
        events for Kafka streams it leases, look at its streams when none was."""
        if not mine:
            self._worker.wake_streams()
        for assignment in mine:
            deliveries = assignment.deliveries
            if self._given_up:
                deliveries = [d for d in deliveries if d.id not in self._given_up]
                if not deliveries:
                    continue
            lease = PublishLease(
                assignment.worker_id,
                assignment.until,
                frozenset(d.id for d in deliveries),
                tuple(d.subscription_id for d in deliveries),
            )
            self._took(lease)
            self._worker.assigned(lease, deliveries)

    def _took(self, lease: PublishLease) -> None:
        taken = self._taken
        taken.append((lease.until, lease.delivery_ids))
        if len(taken) % _FORGET_EVERY == 0:
            now = utcnow()
            while taken and taken[0][0] < now:
                taken.popleft()

    def listening_again(self, untouched: UntouchedAssignments) -> None:
        """The listener connected again: give back due, and claim, what was assigned to this worker and that it
        never heard of."""
        if self._longest is None:
            return
        task = asyncio.get_running_loop().create_task(self._give_back_unheard(untouched, self._longest))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _give_back_unheard(self, untouched: UntouchedAssignments, longest: timedelta) -> None:
        now = utcnow()
        try:
            rows = await untouched(now, now + self._lease, longest)
        except Exception as error:
            logger.warning("could not read what was assigned while not listening (%s); their leases run out", error)
            return
        # Decided in one step of the event loop: a NOTIFY heard before it was taken up, one heard after is ignored.
        read = {delivery_id for delivery_id, _subscription in rows}
        held = {delivery_id for _until, delivery_ids in self._taken for delivery_id in delivery_ids & read}
        unheard = [(delivery_id, subscription) for delivery_id, subscription in rows if delivery_id not in held]
        self._given_up = {d: until for d, until in self._given_up.items() if until > now}
        if not unheard:
            return
        until = now + self._lease
        self._given_up.update((delivery_id, until) for delivery_id, _subscription in unheard)
        try:
            await self._release(self._worker_id, [delivery_id for delivery_id, _subscription in unheard], now)
        except Exception as error:
            logger.warning("could not give back %d unheard assignments (%s); their leases run out", len(unheard), error)
            return
        logger.info("gave back %d deliveries assigned while not listening, to claim now", len(unheard))
        self._worker.heard(unheard)
