"""The dispatcher: claim due deliveries under a lease, send each through its channel, record the outcome.

Stages of one delivery: claimed (leased) -> queued behind its subscription's concurrency limit -> sent ->
recorded (delivered, pending with a retry time, or failed). Work lives in the database; this process holds
at most `worker_max_in_flight` deliveries, so a dead receiver costs rows on disk, not memory.

Isolation: at most `worker_max_in_flight_per_subscription` attempts run for one subscription, with at most three
waves more waiting in memory to start the moment one ends; subscriptions that full, or whose circuit breaker
is open, are left out of the next claim, so their backlog never fills a batch that healthy subscriptions are
waiting behind.

Batches: a channel that can send many messages at once (`BatchChannel`, Kafka) gets a subscription's ready
deliveries in one call, up to its in-flight limit, instead of one task per delivery; an open breaker's
probe is still a single message.

Hand-off: a publish in this process writes the new webhook deliveries this worker has room for already leased to
it, and gives them to it after the commit (`reserve`, `take`, `services.group_commit`): their first attempt
needs no claim. Room is as a claim sees it: within `worker_max_in_flight` and a subscription's buffer of waves,
and none for a subscription whose breaker is open or whose last claim left due rows behind (those go first).

Kafka streams: a Kafka subscription's new events have no rows to claim; this worker's `KafkaStreamer` sends
them from the event log, through the same attempts, records and listeners (`AttemptStage.attempt`), and only their
failures come back here as rows.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from chargewire.channels.base import BatchChannel, Channel
from chargewire.channels.registry import channel_type
from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.dispatch.attempt_stage import AttemptListener, AttemptStage
from chargewire.dispatch.breaker import CircuitBreakers
from chargewire.dispatch.record_flusher import RecordFlusher
from chargewire.dispatch.supervisor import Loop, Supervisor, mark_healthy
from chargewire.dispatch.targets import DeliveryTarget, TargetSource
from chargewire.ids import new_id
from chargewire.kafka.stream_store import StreamStore
from chargewire.kafka.streamer import KafkaStreamer
from chargewire.models import DeliveryStatus, Via
from chargewire.store.delivery_records import ClaimedDelivery
from chargewire.store.delivery_store import DeliveryStore
from chargewire.store.delivery_writes import NewDelivery, PublishLease
from chargewire.waiting import wait_for_any

logger = logging.getLogger(__name__)

# Per subscription, a claim takes up to this many waves of its in-flight limit, and a worker holds no more:
# fewer claims (each a database round trip) per delivery. With a 15 s timeout the last wave starts ~45 s in,
# inside the 60 s lease.
_BUFFER_WAVES = 4
# While every subscription a worker serves is saturated, claims without announced news run at most this often.
_EXCLUSIVE_CLAIM_INTERVAL_S = 1.0

FailingCheck = Callable[[datetime], Awaitable[object]]


@dataclass
class _SubscriptionQueue:
    limit: int
    in_flight: int = 0
    waiting: deque[ClaimedDelivery] = field(default_factory=deque)
    # The last claim may have left some of its due rows behind: it took its cap, or left it out (saturated, breaker).
    left_behind: bool = False

    @property
    def saturated(self) -> bool:
        """Its buffer of waves is in flight and waiting: a claim has nothing to give it."""
        return self.in_flight + len(self.waiting) >= _BUFFER_WAVES * self.limit


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
        self._queues: dict[str, _SubscriptionQueue] = {}
        self._held = 0  # claimed and not yet recorded
        self._room_awaited = False  # a claim found no room under worker_max_in_flight; a flush makes some
        self._tasks: set[asyncio.Task[None]] = set()
        self._records = RecordFlusher(deliveries, settings.worker_poll_interval_s, self._make_room)
        self._wake = asyncio.Event()
        self._news = False  # new work was announced since the last claim (wake() was called)
        self._rows_made = False  # this process committed due deliveries since the last claim (rows_made())
        self._last_exclusive_claim = 0.0
        self._accepting = False  # takes handed-off deliveries: set while run() runs, until it shuts down
        self._reserved: Counter[str] = Counter()  # per subscription, handed-off deliveries not yet taken
        self._on_failing = on_failing
        described = [channel_type(via) for via in channels]
        self._limits = {channel.name: channel.max_in_flight(settings) for channel in described}
        self._batching = frozenset(via for via, channel in channels.items() if isinstance(channel, BatchChannel))
        retry_floors_s = {channel.name: channel.retry_floor_s(settings) for channel in described}
        self._stage = AttemptStage(
            settings, channels, self._breakers, self.worker_id, rng, self._batching, retry_floors_s
        )
        self._keeps_order = {channel.name for channel in described if channel.keeps_order}
        # Publishes make rows only for webhook subscriptions (Kafka's are streamed), so a hand-off is within its cap.
        webhook = Via.WEBHOOK.value
        self._hand_off_cap = (
            _BUFFER_WAVES * self._limits[webhook]
            if webhook in self._limits and webhook not in self._batching | self._keeps_order
            else 0
        )
        self._streamer = (
            KafkaStreamer(settings, streams, targets, self._stage.attempt, self.worker_id)
            if streams is not None and Via.KAFKA in self._batching
            else None
        )

    def add_listener(self, listener: AttemptListener) -> None:
        """Call `listener` after every attempt (metrics, live views)."""
        self._stage.add_listener(listener)

    def _claim_worthwhile(self) -> bool:
        """Whether a claim can find anything, when no new work was announced (a poll, a refill, a flush).

        A claim leaves saturated subscriptions out, and so walks past all of their due backlog: with a
        million rows that is a scan of hundreds of milliseconds holding the write lock. When every
        subscription this worker serves is saturated and none needs a refill, such a claim is worth it only
        for others' retries falling due, so it runs at most every `_EXCLUSIVE_CLAIM_INTERVAL_S`.
        """
        saturated = False
        for queue in self._queues.values():
            if queue.saturated:
                saturated = True
            elif not queue.waiting:
                return True  # its buffer ran dry: refill it
        if not saturated:
            return True
        return time.monotonic() - self._last_exclusive_claim >= _EXCLUSIVE_CLAIM_INTERVAL_S

    def wake(self) -> None:
        """Look for due work now instead of at the next poll (after a publish, resend or retry, here or elsewhere)."""
        self._news = True
        self._wake.set()
        if self._streamer is not None:
            self._streamer.wake()

    def rows_made(self) -> None:
        """This process just committed new deliveries: the next claim need not first ask whether any is due."""
        self._rows_made = True

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
        if not self._accepting or not self._hand_off_cap:
            return None
        room = self.settings.worker_max_in_flight - self._held
        taken: list[NewDelivery] = []
        for delivery in deliveries:
            if len(taken) >= room:
                break
            if self._has_room(delivery.subscription_id):
                self._reserved[delivery.subscription_id] += 1
                taken.append(delivery)
        if not taken:
            return None
        self._held += len(taken)
        until = utcnow() + timedelta(seconds=self.settings.worker_lease_s)
        return PublishLease(
            self.worker_id, until, frozenset(d.id for d in taken), tuple(d.subscription_id for d in taken)
        )

    def _has_room(self, subscription_id: str) -> bool:
        """Whether a new delivery of this subscription may skip the claim: its breaker closed, no due rows of it
        left behind in the database, and its buffer of waves not full."""
        if self._breakers.open_until(subscription_id) is not None:
            return False
        queue = self._queues.get(subscription_id)
        held = self._reserved[subscription_id]
        if queue is not None:
            if queue.left_behind:
                return False
            held += queue.in_flight + len(queue.waiting)
        return held < self._hand_off_cap

    def take(self, lease: PublishLease, deliveries: Sequence[ClaimedDelivery]) -> None:
        """Send the deliveries of `lease`, which its publish just committed, as if claimed."""
        self._spawn(self._take(lease, deliveries))

    def cancel(self, lease: PublishLease) -> None:
        """Give back the room `lease` reserved: its publish did not commit."""
        self._unreserve(lease)
        self._make_room(len(lease.delivery_ids))

    def _make_room(self, count: int) -> None:
        """`count` deliveries no longer count against the worker (recorded, or their reservation given back)."""
        self._held -= count
        if self._room_awaited:
            # A claim, perhaps one made while this room was held, found the worker full: claim again now.
            self._room_awaited = False
            self._wake.set()

    def _unreserve(self, lease: PublishLease) -> None:
        self._reserved.subtract(lease.subscription_ids)
        for subscription_id in set(lease.subscription_ids):
            if self._reserved[subscription_id] <= 0:
                del self._reserved[subscription_id]

    async def _take(self, lease: PublishLease, deliveries: Sequence[ClaimedDelivery]) -> None:
        try:
            targets = await self._targets.targets(set(lease.subscription_ids))
        except Exception:
            # Their leases run out and a claim takes them again.
            logger.warning("looking up the subscriptions of %d handed-off deliveries failed", len(deliveries))
            self.cancel(lease)
            return
        self._unreserve(lease)
        if not self._accepting:
            # Stopping: hand them back due now, for the next worker.
            self._held -= len(deliveries)
            await self._deliveries.release_leases(self.worker_id, [d.id for d in deliveries], utcnow())
            return
        for delivery in deliveries:
            self._queue_for(delivery.subscription_id, targets).waiting.append(delivery)
        for subscription_id in {delivery.subscription_id for delivery in deliveries}:
            self._start_ready(subscription_id, targets)

    def _queue_for(self, subscription_id: str, targets: Mapping[str, DeliveryTarget]) -> _SubscriptionQueue:
        queue = self._queues.get(subscription_id)
        if queue is None:
            target = targets.get(subscription_id)
            limit = self._limits[target.subscription.via] if target else 1
            queue = self._queues[subscription_id] = _SubscriptionQueue(limit)
        return queue

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
            rows_made, self._rows_made = self._rows_made, False
            full = False
            try:
                if (news or self._claim_worthwhile()) and (rows_made or await self._may_find_work()):
                    _claimed, full = await self._claim()
            except Exception:
                self._news = True  # whatever was announced is still to be found once the claim works again
                raise
            mark_healthy()
            if not full:
                # A claim that came back short found all there is: wait for more instead of asking again.
                await self._sleep(stop)

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

    async def _sleep(self, stop: asyncio.Event) -> None:
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        await asyncio.wait(waiters, timeout=self.settings.worker_poll_interval_s, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()

    async def _may_find_work(self) -> bool:
        """Whether a claim is worth the write lock: an idle worker first asks, with a read, whether any row is due.

        Wake-ups come with every publish, and a Kafka subscription's events are streamed, not claimed: on
        SQLite an empty claim would still take the one write lock that ingest and the streams are waiting for.
        A publish of this process that made deliveries says so (`rows_made`), and its claim skips this read.
        """
        return bool(self._queues) or await self._deliveries.any_due(utcnow())

    async def _claim(self) -> tuple[int, bool]:
        """Claim what is due; returns how many, and whether the claim came back full (more may be due)."""
        capacity = self.settings.worker_max_in_flight - self._held
        if capacity <= 0:
            self._room_awaited = True
            return 0, False
        asked = min(capacity, self.settings.worker_batch_size)
        now = utcnow()
        saturated = {sub for sub, queue in self._queues.items() if queue.saturated}
        if saturated:
            self._last_exclusive_claim = time.monotonic()
        excluded = saturated | self._breakers.blocked(now)
        for subscription_id in excluded & self._queues.keys():
            self._queues[subscription_id].left_behind = True
        claimed = await self._deliveries.claim_due_deliveries(
            self.worker_id,
            now,
            now + timedelta(seconds=self.settings.worker_lease_s),
            asked,
            {via: _BUFFER_WAVES * limit for via, limit in self._limits.items()},
            excluded,
        )
        if not claimed:
            return 0, False
        try:
            targets = await self._targets.targets({delivery.subscription_id for delivery in claimed})
        except Exception:
            # Their leases run out and another claim takes them again.
            logger.warning("looking up the subscriptions of %d claimed deliveries failed", len(claimed))
            raise
        self._held += len(claimed)
        for delivery in claimed:
            self._queue_for(delivery.subscription_id, targets).waiting.append(delivery)
        taken = Counter(delivery.subscription_id for delivery in claimed)
        for subscription_id, count in taken.items():
            queue = self._queues[subscription_id]
            queue.left_behind = count >= _BUFFER_WAVES * queue.limit
            self._start_ready(subscription_id, targets)
        return len(claimed), len(claimed) == asked

    def _start_ready(self, subscription_id: str, targets: Mapping[str, DeliveryTarget]) -> None:
        queue = self._queues[subscription_id]
        target = targets.get(subscription_id)
        batching = target is not None and target.subscription.via in self._batching
        while queue.waiting and queue.in_flight < queue.limit:
            now = utcnow()
            if not self._breakers.allows(subscription_id, now):
                self._defer_waiting(subscription_id)
                return
            probe = self._breakers.start_attempt(subscription_id, now)
            size = min(queue.limit - queue.in_flight, len(queue.waiting)) if batching and not probe else 1
            batch = [queue.waiting.popleft() for _ in range(size)]
            queue.in_flight += size
            self._spawn(self._deliver(batch, target))

    def _spawn(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _defer_waiting(self, subscription_id: str) -> None:
        """Hand a subscription's waiting deliveries back, due when its breaker lets a probe through."""
        queue = self._queues[subscription_id]
        waiting = [delivery.id for delivery in queue.waiting]
        queue.waiting.clear()
        self._held -= len(waiting)
        due_at = self._breakers.open_until(subscription_id) or utcnow()
        self._spawn(self._deliveries.release_leases(self.worker_id, waiting, due_at))

    async def _deliver(self, batch: list[ClaimedDelivery], target: DeliveryTarget | None) -> None:
        """Attempt deliveries of one subscription (several only through a batch channel) and queue the records."""
        subscription_id = batch[0].subscription_id
        failed = False
        try:
            records = await self._stage.attempt(batch, target)
            self._records.add(records)
            failed = any(record.status is not DeliveryStatus.DELIVERED for record in records)
        except Exception:
            # The lease runs out and another attempt follows; nothing is lost, but this is a bug to see.
            logger.exception("deliveries %s.. (%d) crashed in the dispatcher", batch[0].id, len(batch))
        finally:
            queue = self._queues[subscription_id]
            queue.in_flight -= len(batch)
            if failed and target is not None and target.subscription.via in self._keeps_order:
                # The channel keeps one entity's records in order (Kafka): what was published after a failed
                # record waits for its retry (claims take such a subscription's pending rows in publishing order).
                self._defer_waiting(subscription_id)
            if target is not None:
                self._start_ready(subscription_id, {subscription_id: target})
            if not queue.waiting:
                if queue.left_behind:
                    # Its buffer ran dry and due rows may be left: claim more now rather than at the next poll.
                    self._wake.set()
                if queue.in_flight == 0:
                    self._queues.pop(subscription_id, None)

    async def _shutdown(self) -> None:
        """Stop starting attempts, wait for those in flight (bounded), and hand back the leases of the rest."""
        self._accepting = False
        waiting = [delivery.id for queue in self._queues.values() for delivery in queue.waiting]
        for queue in self._queues.values():
            queue.waiting.clear()
        self._held -= len(waiting)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.settings.webhook_timeout_s + 5)
        try:
            await self._deliveries.release_leases(self.worker_id, waiting, utcnow())
        except Exception as error:
            logger.warning("could not hand back %d leases (%s); they run out instead", len(waiting), error)
