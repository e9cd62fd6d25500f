"""PostgreSQL's wake-ups across processes: NOTIFY after commits, and a LISTEN in every worker process.

The process's `WakeSignal` (`dispatch.wakeups`) asks a `WakeNotifier` to send `NOTIFY chargewire_deliveries_due`,
and every worker process runs a `WakeListener` that LISTENs on that channel and wakes its dispatcher. A
notification names the webhook deliveries the commits behind it made due (`postgresql_announcements`), and a
worker with no backlog leases exactly those; an empty one (a retry, a resend, too many ids to fit) means "look".

Coalescing: the notifier has at most one NOTIFY in flight. Requests made while it is being sent produce exactly
one more NOTIFY afterwards, naming all of their deliveries (or none, if one of them named none), so a burst of
publishes costs one or two round trips, and the last NOTIFY always leaves after the last commit that asked for it;
otherwise a worker could claim too early and sleep past it.

Assignments (`services.worker_assignments`): a worker's listener carries its id in its name, so that publishers see
it listening; when it connects again, the NOTIFYs sent meanwhile are lost, and it reads what publishes leased to
its worker and nothing has touched since (`untouched_assignments`), for the worker to give back what it never
took up.

Connections: the notifier and the listener each use one dedicated connection, taken from the engine's pool and
then detached from it (`postgresql_driver.dedicated_connection`), and used through its asyncpg driver connection:
made with exactly the engine's URL and connect arguments, not counted against the pool's size, and never the one
a query of the pool lands on. They show in `pg_stat_activity` as NOTIFIER_NAME and LISTENER_NAME.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import asyncpg
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from chargewire.models import DeliveryStatus
from chargewire.store.dialects.base import Announced
from chargewire.store.dialects.postgresql_announcements import (
    MAX_PAYLOAD_BYTES,
    Assignment,
    assignment_bytes,
    decoded_assignments,
    encoded,
    encoded_with_assignments,
)
from chargewire.store.dialects.postgresql_driver import close_quietly, dedicated_connection, pooled_driver
from chargewire.store.outage import is_unavailable
from chargewire.waiting import reconnect_delay_s, wait_for_any

logger = logging.getLogger(__name__)

WAKE_CHANNEL = "chargewire_deliveries_due"
# Their application_name in pg_stat_activity.
NOTIFIER_NAME = "chargewire wake-up notifier"
LISTENER_NAME = "chargewire wake-up listener"

# pg_notify rather than NOTIFY: the payload is bound, not spliced into the statement.
_NOTIFY = "SELECT pg_notify($1, $2)"
_CHECK_ALIVE = "SELECT 1"

# Errors of a lost or refused connection; anything else is a bug and is logged with its traceback.
_CONNECTION_ERRORS = (OSError, TimeoutError, SQLAlchemyError, asyncpg.PostgresError, asyncpg.InterfaceError)
_FLUSH_TIMEOUT_S = 10.0
# Room kept beside an assignment for the names of due deliveries and the JSON around them.
_DUE_ROOM = 1024

Waiter = Callable[[], None]
AnnouncedWaiter = Callable[[Announced], None]
# The (delivery id, subscription id) of the deliveries publishes leased to the listener's worker, untouched since:
# given `now`, `until` and `longest`, those whose leases run out after `now`, at most at `until`, and at most
# `longest` after their publish.
UntouchedAssignments = Callable[[datetime, datetime, timedelta], Awaitable[list[tuple[str, str]]]]


class AssignedWaiter(Protocol):
    """What a worker's listener tells of assignments (`services.worker_assignments.TakingAssignments`)."""

    def __call__(self, mine: Sequence[Assignment]) -> None:
        """A payload carried assignments: those to this worker (perhaps none)."""
        ...

    def listening_again(self, untouched: UntouchedAssignments) -> None:
        """The listener connected again: NOTIFYs sent meanwhile were lost; `untouched` reads what they assigned."""
        ...


class Coalescer:
    """Runs `send` at most once at a time; any requests made while it runs cause exactly one more run after it."""

    def __init__(self, send: Callable[[], Awaitable[None]]) -> None:
        self._send = send
        self._wanted = False
        self._runner: asyncio.Task[None] | None = None

    def request(self) -> None:
        """Ask for a run of `send` that starts after this call; returns at once."""
        self._wanted = True
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run_while_wanted())

    async def flush(self) -> None:
        """Wait until every run asked for so far has finished."""
        while self._runner is not None and not self._runner.done():
            await asyncio.shield(self._runner)

    async def aclose(self, timeout_s: float) -> None:
        """Finish what was asked for, waiting at most `timeout_s`; cancel the rest."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), timeout_s)
        if self._runner is not None and not self._runner.done():
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner

    async def _run_while_wanted(self) -> None:
        while self._wanted:
            # Cleared before the run: a request that arrives during it makes one more run afterwards.
            self._wanted = False
            await self._send()


class WakeNotifier:
    """Sends NOTIFY on the wake-up channel after commits, coalesced: one in flight, at most one more queued."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sends = Coalescer(self._send)
        self._connection: Any = None
        self._closed = False
        # What the next NOTIFY names: the deliveries requests announced since the last one was sent (a dict for
        # its order and because a group commit's publishes each announce the whole group), unless one named none.
        self._announced: dict[str, str] = {}
        self._look = False
        # Deliveries written leased to a worker, with their sizes in a payload: each NOTIFY carries what fits.
        self._assignments: list[tuple[Assignment, int]] = []

    def fits(self, assignment: Assignment) -> bool:
        """Whether `assignment` fits in one NOTIFY (see `assign`)."""
        return assignment_bytes(assignment) <= MAX_PAYLOAD_BYTES - _DUE_ROOM

    def assign(self, assignment: Assignment) -> None:
        """Send `assignment` (which `fits`) to its worker in a NOTIFY soon (call it after the commit that wrote the
        deliveries leased to it); returns at once."""
        if self._closed:
            return
        self._assignments.append((assignment, assignment_bytes(assignment)))
        self._sends.request()

    def request(self, announced: Announced = ()) -> None:
        """Ask for a NOTIFY soon (call it after a commit), naming the deliveries it made due if it knows them all;
        returns at once, and many requests cost one NOTIFY."""
        if self._closed:
            return
        if announced:
            self._announced.update(announced)
        else:
            self._look = True
        self._sends.request()

    async def flush(self) -> None:
        """Wait until every request made so far has been answered by a NOTIFY (or given up on)."""
        await self._sends.flush()

    async def aclose(self) -> None:
        """Send what was asked for (a bounded wait), then close the connection."""
        self._closed = True
        await self._sends.aclose(_FLUSH_TIMEOUT_S)
        await self._disconnect()

    def _payload(self) -> str:
        """The payload of the NOTIFY about to leave, taking what was asked for so far (assignments as many as fit;
        the rest leave in the next)."""
        announced, self._announced = self._announced, {}
        look, self._look = self._look, False
        if not self._assignments:
            return "" if look else encoded(list(announced.items()))
        due = "" if look else encoded(list(announced.items())) if announced else None
        room = MAX_PAYLOAD_BYTES - len(due or "") - _DUE_ROOM
        taken: list[Assignment] = []
        while self._assignments and (not taken or self._assignments[0][1] <= room):
            assignment, size = self._assignments.pop(0)
            taken.append(assignment)
            room -= size
        if self._assignments:
            self._sends.request()
        return encoded_with_assignments(due, taken)

    async def _send(self) -> None:
        payload = self._payload()
        # A kept connection may have died since the last send (server restart, idle timeout); a fresh one
        # gets one more try before this wake is left to the poll.
        for attempt in range(2):
            try:
                if self._connection is None:
                    self._connection = await dedicated_connection(self._engine, NOTIFIER_NAME)
                await self._connection.execute(_NOTIFY, WAKE_CHANNEL, payload)
                return
            except _CONNECTION_ERRORS as error:
                await self._disconnect()
                if attempt == 1:
                    logger.warning("could not send a wake-up (%s); workers find the work at their next poll", error)
            except Exception:
                await self._disconnect()
                logger.exception("sending a wake-up failed; workers find the work at their next poll")
                return

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await close_quietly(connection)


def listener_name(worker_id: str) -> str:
    """The application_name of the wake-up listener of worker `worker_id`."""
    return f"{LISTENER_NAME} {worker_id}"


# The workers whose listener is connected now and whose heartbeat is recent: those a publish may assign to.
_LISTENING_WORKERS = """
SELECT h.worker_id FROM worker_heartbeats h
WHERE h.heartbeat_at >= $1 AND h.stopped_at IS NULL
  AND EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.application_name = $2 || h.worker_id)
ORDER BY h.worker_id
"""


# Found by the due index: an assignment's lease runs out within the assignment lease of now. Nothing but a publish
# writes a row leased to a worker with `updated_at` left at `created_at` (a claim, a release, a record all set it); an
# assignment's lease ends at most `$5` after its publish, a hand-off's to a worker of the publishing process later.
_UNTOUCHED_ASSIGNMENTS = """
SELECT id, subscription_id FROM deliveries
WHERE status = $4 AND next_attempt_at > $1 AND next_attempt_at <= $2
  AND lease_owner = $3 AND attempt_count = 0 AND updated_at = created_at AND next_attempt_at <= created_at + $5
ORDER BY id
"""


async def untouched_assignments(
    engine: AsyncEngine, worker_id: str, now: datetime, until: datetime, longest: timedelta
) -> list[tuple[str, str]]:
    """The (delivery id, subscription id), in id order, of the deliveries publishes leased to `worker_id` that
    nothing has touched since, whose leases run out after `now`, at most at `until`, and at most `longest` after
    their publish."""
    async with pooled_driver(engine, _UNTOUCHED_ASSIGNMENTS) as driver:
        rows = await driver.fetch(
            _UNTOUCHED_ASSIGNMENTS, _naive(now), _naive(until), worker_id, DeliveryStatus.PENDING.value, longest
        )
    return [(row[0], row[1]) for row in rows]


def _naive(moment: datetime) -> datetime:
    """`moment` as stored: naive UTC (`tables.UtcDateTime`)."""
    return moment.astimezone(UTC).replace(tzinfo=None)


async def listening_workers(engine: AsyncEngine, since: datetime) -> list[str]:
    """The workers listening for wake-ups now that beat since `since`, in id order."""
    async with pooled_driver(engine, _LISTENING_WORKERS) as driver:
        rows = await driver.fetch(_LISTENING_WORKERS, _naive(since), listener_name(""))
    return [row[0] for row in rows]


class WakeListener:
    """LISTENs on the wake-up channel and calls `on_wake` for every notification, reconnecting when it drops."""

    def __init__(
        self,
        engine: AsyncEngine,
        on_wake: Waiter,
        on_announced: AnnouncedWaiter | None = None,
        *,
        assigned: tuple[str, AssignedWaiter] | None = None,
        first_retry_s: float = 0.5,
        max_retry_s: float = 30.0,
        check_alive_every_s: float = 15.0,
    ) -> None:
        self._engine = engine
        self._on_wake = on_wake
        self._on_announced = on_announced
        # The worker this listener takes assignments for, and what it does with them; named in pg_stat_activity
        # (`listener_name`), where publishers look for listening workers.
        self._assigned = assigned
        self._first_retry_s = first_retry_s
        self._max_retry_s = max_retry_s
        self._check_alive_every_s = check_alive_every_s
        self.connections = 0  # how many times it has started listening (1 + reconnects)

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until `stop` is set; a lost connection is logged and made again with growing delays."""
        failures = 0
        while not stop.is_set():
            try:
                async with self._listening() as (connection, lost):
                    self._started_listening()
                    failures = 0
                    await self._wait_until_lost(connection, lost, stop)
                    reason = "the connection closed"
            except Exception as error:
                if not (isinstance(error, _CONNECTION_ERRORS) or is_unavailable(error)):
                    logger.exception("the wake-up listener failed")
                reason = str(error) or type(error).__name__
            if stop.is_set():
                return
            delay = reconnect_delay_s(failures, self._first_retry_s, self._max_retry_s)
            failures += 1
            logger.warning(
                "wake-up listener not connected (%s); connecting again in %.1f s, polling meanwhile",
                reason,
                delay,
            )
            await wait_for_any([stop], delay)

    def _started_listening(self) -> None:
        self.connections += 1
        if self.connections == 1:
            logger.info("listening for wake-ups on %s", WAKE_CHANNEL)
        else:
            logger.info("wake-up listener connected again; listening on %s", WAKE_CHANNEL)
            if self._assigned is not None:
                worker_id, on_assigned = self._assigned
                engine = self._engine
                on_assigned.listening_again(
                    lambda now, until, longest: untouched_assignments(engine, worker_id, now, until, longest)
                )
        # Notifications sent while nobody listened (before the first LISTEN, or while reconnecting) are lost:
        # one wake now finds whatever they announced.
        self._on_wake()

    @contextlib.asynccontextmanager
    async def _listening(self) -> AsyncIterator[tuple[Any, asyncio.Event]]:
        name = LISTENER_NAME if self._assigned is None else listener_name(self._assigned[0])
        connection = await dedicated_connection(self._engine, name)
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _connection: lost.set())
            await connection.add_listener(WAKE_CHANNEL, self._on_notification)
            yield connection, lost
        finally:
            await close_quietly(connection)

    def _on_notification(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        worker_id, on_assigned = self._assigned or ("", None)
        announced, mine, wakes = decoded_assignments(payload, worker_id)
        if mine is not None and on_assigned is not None:
            on_assigned(mine)
        if not wakes:
            return
        if announced and self._on_announced is not None:
            self._on_announced(announced)
        else:
            self._on_wake()

    async def _wait_until_lost(self, connection: Any, lost: asyncio.Event, stop: asyncio.Event) -> None:
        while not (stop.is_set() or lost.is_set()):
            await wait_for_any([stop, lost], self._check_alive_every_s)
            if not (stop.is_set() or lost.is_set()):
                # A connection cut without a FIN (a failed-over server, a dropped route) looks idle, not closed.
                await asyncio.wait_for(connection.fetchval(_CHECK_ALIVE), self._check_alive_every_s)
