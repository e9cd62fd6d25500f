"""The dispatcher: claim due deliveries under a lease, send each through its channel, record the outcome.

Stages of one delivery: claimed (leased) -> queued behind its subscription's concurrency limit -> sent ->
recorded (delivered, pending with a retry time, or failed). Work lives in the database; this process holds
at most `worker_max_in_flight` deliveries, and its publishes' hand-offs a bounded overflow beyond, so a dead
receiver costs rows on disk, not memory.

Isolation: at most `worker_max_in_flight_per_subscription` attempts run for one subscription, with a buffer more
waiting in memory to start the moment one ends while their leases last; subscriptions that full, or whose breaker
is open, are left out of the next claim, so their backlog never fills a batch that healthy subscriptions are
waiting behind.

Batches: a channel that can send many messages at once (`BatchChannel`, Kafka) gets a subscription's ready
deliveries in one call, up to its in-flight limit, instead of one task per delivery; an open breaker's
probe is still a single message.

Hand-off: a publish in this process writes the new webhook deliveries this worker has room for already leased to
it, and gives them to it after the commit (`reserve`, `take`, `services.group_commit`): their first attempt
needs no claim. Room is a claim's and an overflow beyond it (`worker_max_in_flight`, a subscription's buffer, and
their overflow, `subscription_queues`), and none for a subscription whose breaker is open or whose last claim left
due rows behind (those go first).

Announced claims: a wake-up that names the webhook deliveries it made due lets a worker with no known backlog lease
exactly those, in one statement (`announced_claims`).

Kafka streams: a Kafka subscription's new events have no rows to claim; this worker's `KafkaStreamer` sends
them from the event log, through the same attempts, records and listeners (`AttemptStage.attempt`), and only their
failures come back here as rows.

Its parts: `SubscriptionQueues` decides what starts, waits, is left out of a claim or may be handed off
(`subscription_queues`); `AttemptStage` sends and makes the records (`attempt_stage`, `outcomes`);
`RecordFlusher` writes them (`record_flusher`); `AnnouncedClaims` keeps what wake-ups named
(`announced_claims`). The dispatcher claims, starts the tasks and keeps the worker's room.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from chargewire.channels.base import BatchChannel, Channel
from chargewire.channels.registry import channel_type
from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.dispatch.announced_claims import AnnouncedClaims
from chargewire.dispatch.attempt_stage import AttemptListener, AttemptStage
from chargewire.dispatch.breaker import CircuitBreakers
from chargewire.dispatch.record_flusher import RecordFlusher
from chargewire.dispatch.subscription_queues import Ready, SubscriptionQueues
from chargewire.dispatch.supervisor import Loop, Supervisor, mark_healthy
from chargewire.dispatch.targets import DeliveryTarget, TargetSource
from chargewire.ids import new_id
from chargewire.kafka.stream_store import StreamStore
from chargewire.kafka.streamer import KafkaStreamer
from chargewire.models import DeliveryStatus, Via
from chargewire.store.delivery_claims import ClaimRequest
from chargewire.store.delivery_records import ClaimedDelivery
from chargewire.store.delivery_store import DeliveryStore
from chargewire.store.delivery_writes import NewDelivery, PublishLease
from chargewire.store.dialects.base import Announced
from chargewire.waiting import wait_for_any

logger = logging.getLogger(__name__)

FailingCheck = Callable[[datetime], Awaitable[object]]


class Dispatcher:
    """One worker's delivery loop; several can run against one PostgreSQL database."""

    def __init__(
        self,
        settings: Settings,
        deliveries: DeliveryStore,
        targets: TargetSource,
        channels: Mapping[str, Channel],
        *,
        worker_id: str | None = None,
        rng: random.Random | None = None,
        on_failing: FailingCheck | None = None,
        streams: StreamStore | None = None,
    ) -> None:
        self.settings = settings
        self.worker_id = worker_id or new_id("wrk")
        self._deliveries = deliveries
        self._targets = targets
        self._channels = channels
        rng = rng or random.Random()
        self._breakers = CircuitBreakers(
            jitter=settings.retry_jitter, retry_after_cap_s=settings.retry_after_cap_s, rng=rng
        )
        self._held = 0  # claimed and not yet recorded
        self._room_awaited = False  # a claim found no room under worker_max_in_flight; a flush makes some
        self._tasks: set[asyncio.Task[None]] = set()
        self._records = RecordFlusher(deliveries, self._make_room, self._falls_due, settings.worker_max_in_flight)
        self._wake = asyncio.Event()
        self._sleeping_until: datetime | None = None  # the claim loop's next look, unless woken before
        self._news = False  # new work was announced since the last claim (wake() was called)
        self._due_known = False  # deliveries were known due since the last claim (due_known())
        self._announcements = AnnouncedClaims(deliveries, settings.worker_idle_poll_s)
        self._backlog = True  # the last claim may have left due rows (it came back full, or left some out)
        self._known_due_at: datetime | None = None  # the first due time this worker knows of (read, or its own)
        self._accepting = False  # takes handed-off deliveries: set while run() runs, until it shuts down
        self._on_failing = on_failing
        described = [channel_type(via) for via in channels]
        limits = {channel.name: channel.max_in_flight(settings) for channel in described}
        self._batching = frozenset(via for via, channel in channels.items() if isinstance(channel, BatchChannel))
        retry_floors_s = {channel.name: channel.retry_floor_s(settings) for channel in described}
        self._stage = AttemptStage(
            settings, channels, self._breakers, self.worker_id, rng, self._batching, retry_floors_s
        )
        self._keeps_order = {channel.name for channel in described if channel.keeps_order}
        # Publishes make rows only for webhook subscriptions (Kafka's are streamed): only those are handed off.
        webhook = Via.WEBHOOK.value
        hand_off_via = webhook if webhook in limits and webhook not in self._batching | self._keeps_order else None
        self._queues = SubscriptionQueues(limits, self._breakers, hand_off_via, settings)
        self._streamer = (
            KafkaStreamer(settings, streams, targets, self._stage.attempt, self.worker_id, self._falls_due)
            if streams is not None and Via.KAFKA in self._batching
            else None
        )

    def add_listener(self, listener: AttemptListener) -> None:
        """Call `listener` after every attempt (metrics, live views)."""
        self._stage.add_listener(listener)

    def wake(self, announced: Announced = ()) -> None:
        """Look for due work now instead of at the next poll (after a publish, resend or retry, here or elsewhere);
        `announced` names the deliveries made due when the waker knows them all."""
        self._announcements.heard(announced)
        self._news = True
        self._wake.set()
        if self._streamer is not None:
            self._streamer.wake()

    def heard(self, announced: Announced = ()) -> None:
        """Another process may have made work (its commit, its NOTIFY, which may name the deliveries): look for due
        deliveries and, even with no Kafka subscription known here, for streams (one may have been created there)."""
        self.wake(announced)
        if self._streamer is not None:
            self._streamer.heard()

    def streams_changed(self) -> None:
        """A Kafka subscription was created, changed or enabled in this process: its stream may be ready."""
        if self._streamer is not None:
            self._streamer.streams_changed()

    def due_known(self) -> None:
        """Deliveries are known to be due (this process just committed new ones, or a commit watcher just read some
        due): the next claim need not first ask whether any is due."""
        self._due_known = True

    def wake_streams(self) -> bool:
        """Look for ready Kafka streams now (after a publish whose every delivery was handed to this worker);
        returns whether any Kafka subscription has a stream, so that other processes' streamers should hear too."""
        if self._streamer is None:
            return False
        self._streamer.wake()
        return self._streamer.streams_exist

    def reserve(self, deliveries: Sequence[NewDelivery]) -> PublishLease | None:
        """Make room for those of a publish's new deliveries this worker can take now, to be written leased to
        it; None when it takes none. Called inside the publish's transaction; `take` or `cancel` follows."""
        if not self._accepting or not self._queues.hand_off_cap:
            return None
        room = self._queues.hand_off_room - self._held
        # Gathered in the loop, not by generators afterwards: this runs in every publish.
        delivery_ids: list[str] = []
        subscription_ids: list[str] = []
        for delivery in deliveries:
            if len(delivery_ids) >= room:
                break
            subscription_id = delivery.subscription_id
            if self._queues.may_hand_off(subscription_id):
                self._queues.reserve(subscription_id)
                delivery_ids.append(delivery.id)
                subscription_ids.append(subscription_id)
        if not delivery_ids:
            return None
        self._held += len(delivery_ids)
        until = utcnow() + timedelta(seconds=self.settings.worker_lease_s)
        return PublishLease(self.worker_id, until, frozenset(delivery_ids), tuple(subscription_ids))

    def take(self, lease: PublishLease, deliveries: Sequence[ClaimedDelivery]) -> None:
        """Send the deliveries of `lease`, which its publish just committed, as if claimed."""
        self._spawn(self._take(lease, deliveries))

    def assigned(self, lease: PublishLease, deliveries: Sequence[ClaimedDelivery]) -> None:
        """Send the deliveries of `lease`, which a publish of another process committed leased to this worker and
        sent here whole (`services.worker_assignments`), as if claimed; those a hand-off would not have taken (no
        room, the subscription's breaker open or its buffer full) are given back due now, for a claim."""
        if self._streamer is not None:
            self._streamer.heard()  # the publish may have events for Kafka streams as well
        room = self.settings.worker_max_in_flight - self._held
        taken: list[ClaimedDelivery] = []
        given_back: list[str] = []
        for delivery in deliveries:
            if self._accepting and len(taken) < room and self._queues.may_hand_off(delivery.subscription_id):
                self._queues.reserve(delivery.subscription_id)
                taken.append(delivery)
            else:
                given_back.append(delivery.id)
        if given_back:
            self._spawn(self._hand_back(given_back, utcnow()))
        if taken:
            self._held += len(taken)
            held = frozenset(delivery.id for delivery in taken)
            subscription_ids = tuple(delivery.subscription_id for delivery in taken)
            self.take(replace(lease, delivery_ids=held, subscription_ids=subscription_ids), taken)

    def cancel(self, lease: PublishLease) -> None:
        """Give back the room `lease` reserved: its publish did not commit."""
        self._queues.unreserve(lease.subscription_ids)
        self._make_room(len(lease.delivery_ids))

    def _make_room(self, count: int) -> None:
        """`count` deliveries no longer count against the worker (recorded, or their reservation given back)."""
        self._held -= count
        if self._room_awaited:
            # A claim, perhaps one made while this room was held, found the worker full: claim again now.
            self._room_awaited = False
            self._wake.set()

    async def _take(self, lease: PublishLease, deliveries: Sequence[ClaimedDelivery]) -> None:
        try:
            targets = await self._targets.targets(set(lease.subscription_ids))
        except Exception:
            # Their leases run out and a claim takes them again.
            logger.warning("looking up the subscriptions of %d handed-off deliveries failed", len(deliveries))
            self.cancel(lease)
            return
        self._queues.unreserve(lease.subscription_ids)
        if not self._accepting:
            # Stopping: hand them back due now, for the next worker.
            self._held -= len(deliveries)
            await self._deliveries.release_leases(self.worker_id, [d.id for d in deliveries], utcnow())
            return
        # The first batch that may start is attempted in this task: a task of its own for it cost a task and a
        # turn of the event loop per hand-off, which at low rates is one per event.
        first: tuple[list[ClaimedDelivery], DeliveryTarget | None] | None = None
        for subscription_id in self._queues.add(deliveries, targets, lease.until):
            target = targets.get(subscription_id)
            kept = self._act(self._queues.start_ready(subscription_id, self._batches(target)), target, first is None)
            if kept is not None:
                first = (kept, target)
        if first is not None:
            await self._deliver(*first)

    def loops(self) -> dict[str, Loop]:
        """The long-running loops of this worker, by name, for a supervisor to run until `stop` is set."""
        loops: dict[str, Loop] = {"claim": self._claim_loop, "flush": self._records.run}
        if self._streamer is not None:
            loops["stream"] = self._streamer.run
        check = self._on_failing
        if check is not None:
            loops["disable-check"] = lambda stop: self._disable_loop(check, stop)
        return loops

    async def run(self, stop: asyncio.Event, supervisor: Supervisor | None = None) -> None:
        """Deliver until `stop` is set, then finish what is in flight and hand back the rest.

        Raises TaskFailed, after that same finish, when a loop failed in a way retrying cannot clear.
        """
        supervisor = supervisor or Supervisor(stop)
        self._accepting = True
        for name, loop in self.loops().items():
            supervisor.start(name, loop)
        try:
            await supervisor.wait()
        finally:
            await self.finish()

    async def finish(self) -> None:
        """Let in-flight attempts end (bounded), hand back what waits, record what finished, close the channels."""
        await self._shutdown()
        await self._records.flush_at_exit()
        await self.aclose()

    async def _claim_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            # Cleared before the claim, so a wake that arrives while it runs is not lost.
            self._wake.clear()
            news, self._news = self._news, False
            due_known, self._due_known = self._due_known, False
            announced = self._announcements.taken()
            try:
                if (
                    announced
                    and self._announcements.alone(self._backlog, self._known_due_at, utcnow())
                    and not self._queues.left_behind_with_room()
                ):
                    full = await self._claim_announced(announced)
                    wait_s = self.settings.worker_poll_interval_s
                else:
                    full, wait_s = await self._look(news, due_known)
            except Exception:
                self._news = True
                self._announcements.missed()
                raise
            mark_healthy()
            if not full:
                # A claim that came back short found all there is: wait for more instead of asking again.
                await self._sleep(stop, wait_s)

    async def _look(self, news: bool, due_known: bool) -> tuple[bool, float]:
        """Claim if a claim may find work; returns whether it came back full, and how long to wait for a wake-up.

        An idle worker first asks, with a read, when the first pending delivery falls due: a claim takes the write
        lock (on SQLite the one that ingest and the streams wait for), and wake-ups come with every publish, also
        for Kafka subscriptions' events, which are streamed, not claimed. Nothing due: it sleeps until the first
        falls due (a retry, a lease that runs out), at most `worker_idle_poll_s`, unless woken: 0.2 s polls of
        an idle worker were its largest fixed cost. A publish of this process that made deliveries, or a commit
        watcher that read some due, says so (`due_known`), and its claim skips the read; a worker with work in hand
        claims without it and polls.
        """
        if not (news or self._queues.claim_worthwhile()):
            return False, self.settings.worker_poll_interval_s
        if not (due_known or self._queues.busy):
            now = utcnow()
            due_at = self._known_due_at = await self._deliveries.next_due_at()
            if due_at is None or due_at > now:
                self._backlog = False  # nothing is due: whatever a claim left behind has been taken since
                return False, self._idle_wait_s(now, due_at)
        _claimed, full = await self._claim()
        return full, self.settings.worker_poll_interval_s

    async def _claim_announced(self, announced: Sequence[tuple[str, str]]) -> bool:
        """Lease the announced deliveries (id order) within this worker's room and caps, leaving out the
        subscriptions a claim leaves out; returns whether anything was left, for the usual claim to look for."""
        request = self._claim_request()
        if request is None:
            return False
        claimed = await self._deliveries.claim_announced(request, announced)
        if claimed:
            await self._start_claimed(claimed)
        self._backlog = len(claimed) < len(announced)
        return self._backlog

    def _idle_wait_s(self, now: datetime, due_at: datetime | None) -> float:
        """How long an idle worker sleeps, unless woken: until `due_at`, within the idle poll (never below the poll)."""
        ceiling_s = max(self.settings.worker_idle_poll_s, self.settings.worker_poll_interval_s)
        return ceiling_s if due_at is None else min(ceiling_s, (due_at - now).total_seconds())

    def _falls_due(self, at: datetime) -> None:
        """This worker just wrote a pending delivery due at `at` (a retry, a hand-back): a claim loop sleeping past
        that looks again now, and then sleeps until it."""
        if self._known_due_at is None or at < self._known_due_at:
            self._known_due_at = at
        if self._sleeping_until is not None and at < self._sleeping_until:
            self._sleeping_until = None
            self._wake.set()

    async def _disable_loop(self, check: FailingCheck, stop: asyncio.Event) -> None:
        """Let the owner disable subscriptions that kept failing, every `disable_check_interval_s`."""
        while not stop.is_set():
            await wait_for_any([stop], self.settings.disable_check_interval_s)
            if not stop.is_set():
                await check(utcnow())
                mark_healthy()

    async def aclose(self) -> None:
        """Close the channels' clients (run() does this when it ends)."""
        for channel in self._channels.values():
            await channel.aclose()

    async def run_once(self) -> int:
        """Claim and deliver one batch, stream what Kafka streams have; returns how many were attempted (for tests)."""
        claimed, _full = await self._claim()
        while self._tasks:
            await asyncio.gather(*list(self._tasks))
        await self._records.flush()
        streamed = await self._streamer.run_once() if self._streamer is not None else 0
        return claimed + streamed

    async def _sleep(self, stop: asyncio.Event, wait_s: float) -> None:
        self._sleeping_until = utcnow() + timedelta(seconds=wait_s)
        try:
            await wait_for_any([self._wake, stop], wait_s)
        finally:
            self._sleeping_until = None

    async def _claim(self) -> tuple[int, bool]:
        """Claim what is due; returns how many, and whether the claim came back full (more may be due)."""
        request = self._claim_request()
        if request is None:
            return 0, False
        claimed = await self._deliveries.claim_due_deliveries(request)
        self._announcements.looked()
        full = len(claimed) == request.limit
        self._backlog = full
        if not full:
            self._queues.found_all_due()
            if self._known_due_at is not None and self._known_due_at <= request.now:
                self._known_due_at = None  # what was due then was taken, here or by another worker
        if not claimed:
            return 0, False
        await self._start_claimed(claimed)
        return len(claimed), full

    def _claim_request(self) -> ClaimRequest | None:
        """What a claim may ask for now, within this worker's room and caps, leaving out the subscriptions a claim
        leaves out; None when the worker is full (a flush makes room, and wakes the claim loop)."""
        capacity = self._queues.claim_room(self._held)
        if capacity <= 0:
            self._room_awaited = True
            self._backlog = True
            return None
        now = utcnow()
        return ClaimRequest(
            self.worker_id,
            now,
            now + timedelta(seconds=self.settings.worker_lease_s),
            min(capacity, self.settings.worker_batch_size),
            self._queues.claim_caps,
            self._queues.left_out(now),
        )

    async def _start_claimed(self, claimed: Sequence[ClaimedDelivery]) -> None:
        """Hold what a claim leased and start what may start."""
        try:
            targets = await self._targets.targets({delivery.subscription_id for delivery in claimed})
        except Exception:
            # Their leases run out and another claim takes them again.
            logger.warning("looking up the subscriptions of %d claimed deliveries failed", len(claimed))
            raise
        self._held += len(claimed)
        for subscription_id in self._queues.claimed(claimed, targets):
            self._start_ready(subscription_id, targets)

    def _start_ready(self, subscription_id: str, targets: Mapping[str, DeliveryTarget]) -> None:
        target = targets.get(subscription_id)
        self._act(self._queues.start_ready(subscription_id, self._batches(target)), target)

    def _batches(self, target: DeliveryTarget | None) -> bool:
        """Whether the subscription's channel takes its ready deliveries in one call (`BatchChannel`)."""
        return target is not None and target.subscription.via in self._batching

    def _act(
        self, ready: Ready, target: DeliveryTarget | None, keep_first: bool = False
    ) -> list[ClaimedDelivery] | None:
        """Start the batches a queue made ready and hand back what it gave up; with `keep_first`, the first batch is
        returned for the caller to attempt instead of started."""
        batches = ready.batches
        kept = batches.pop(0) if keep_first and batches else None
        for batch in batches:
            self._spawn(self._deliver(batch, target))
        if ready.hand_back is not None:
            self._held -= len(ready.hand_back.delivery_ids)
            self._spawn(self._hand_back(ready.hand_back.delivery_ids, ready.hand_back.due_at))
        if ready.refill:
            self._wake.set()
        return kept

    async def _hand_back(self, delivery_ids: list[str], due_at: datetime) -> None:
        """Give back leased deliveries unattempted, due at `due_at`."""
        await self._deliveries.release_leases(self.worker_id, delivery_ids, due_at)
        self._falls_due(due_at)

    def _spawn(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)  # the loop's own: `asyncio.create_task` adds two calls
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, batch: list[ClaimedDelivery], target: DeliveryTarget | None) -> None:
        """Attempt deliveries of one subscription (several only through a batch channel) and queue the records."""
        subscription_id = batch[0].subscription_id
        failed = False
        try:
            records = await self._stage.attempt(batch, target)
            self._records.add(records)
            for record in records:  # a loop, not `any(...)`: its generator was a frame per attempt
                if record.status is not DeliveryStatus.DELIVERED:
                    failed = True
        except Exception:
            # The lease runs out and another attempt follows; nothing is lost, but this is a bug to see.
            logger.exception("deliveries %s.. (%d) crashed in the dispatcher", batch[0].id, len(batch))
        finally:
            hold_back = failed and target is not None and target.subscription.via in self._keeps_order
            batching = self._batches(target) if target is not None else None
            self._act(self._queues.finished(subscription_id, len(batch), hold_back, batching), target)

    async def _shutdown(self) -> None:
        """Stop starting attempts, wait for those in flight (bounded), and hand back the leases of the rest."""
        self._accepting = False
        waiting = self._queues.drain()
        self._held -= len(waiting)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.settings.webhook_timeout_s + 5)
        try:
            await self._deliveries.release_leases(self.worker_id, waiting, utcnow())
        except Exception as error:
            logger.warning("could not hand back %d leases (%s); they run out instead", len(waiting), error)
