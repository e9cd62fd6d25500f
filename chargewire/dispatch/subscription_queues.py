"""One worker's per-subscription queues: what is in flight and waiting, and what may start, be claimed or be handed off.

At most a subscription's in-flight limit runs at once, with more waiting in memory to start the moment one ends (its
buffer, `buffer_size`). A subscription whose buffer is full (saturated), or whose circuit breaker is open, is left out
of the next claim. These queues decide; the dispatcher starts the tasks and writes the leases they hand back.

A waiting delivery starts only while its lease has room for a whole attempt (`attempt_bound_s`): the lease is what
keeps another worker from sending it too, so one whose lease is nearly over is handed back, due at once, to be
claimed again under a new lease. The buffer's depth is therefore bounded by memory and fairness, not by the lease.

Hand-offs overflow: a publish's new delivery that finds its subscription's buffer (or the worker's room) full still
goes straight to the worker, written leased to it, while the worker's overflow room (`hand_off_room`) and the
subscription's share of it last: written due instead, it would cost a claim, and a claim that leaves the saturated
subscription out makes its next hand-offs wait until its buffer drains, so one refusal could bring many more. Due
rows a claim left behind (it took a subscription's cap, or left it out) are claimed, by the usual claim, as soon as
their subscription has room again (`left_behind_with_room`); until a usual claim that looked at it comes back
short (`found_all_due`), its queue takes hand-offs only while it holds less than half its buffer, leaving the rest to
the claims that fetch the older rows, so those are not starved by newer ones. It still takes some: a refused
hand-off of another process's publish is a write to give it back and a claim to fetch it again, and refusing every
one kept a busy worker that fell behind once in that costlier mode for as long as the traffic lasted. Overflowing
deliveries wait in the same queue, in publish order, under the same lease rule; claims do not count them against
the worker's room (`claim_room`), so one subscription's burst leaves others' claims their room.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.dispatch.breaker import CircuitBreakers
from chargewire.dispatch.targets import DeliveryTarget
from chargewire.store.delivery_records import ClaimedDelivery

# Per subscription, a claim takes at least this many waves of its in-flight limit: fewer claims (each a database
# round trip) per delivery.
_MIN_BUFFER_WAVES = 4
# What a subscription may hold at most, as a share of the worker's room (`worker_max_in_flight`): one busy
# subscription leaves the rest of the room to the others' claims. At the defaults (256) that is 128 for a limit of
# 16 (8 waves): a publish group of up to 64 finds room while 16 are in flight and 48 wait.
_BUFFER_SHARE_OF_ROOM = 2
# Hand-offs may hold this many times the worker's room (`worker_max_in_flight`) beyond it; one subscription at most
# its buffer's share of that (`_BUFFER_SHARE_OF_ROOM`): at the defaults 256 more, 128 of one subscription.
_HAND_OFF_OVERFLOW_ROOMS = 1
# While a subscription has due rows left behind, hand-offs may fill this share of its buffer (half): the rest is for
# the claims that fetch those rows.
_LEFT_BEHIND_SHARE_OF_BUFFER = 2
# Beyond the attempt's own timeout, what its record needs to be written before the lease runs out.
_LEASE_MARGIN_S = 5.0
# While every subscription a worker serves is saturated, claims without announced news run at most this often.
_EXCLUSIVE_CLAIM_INTERVAL_S = 1.0


def attempt_bound_s(settings: Settings) -> float:
    """How much of its lease a waiting delivery needs left to start: its attempt and record, or half the lease where
    the lease is shorter than that (then no wait could keep the whole attempt in it)."""
    return min(settings.webhook_timeout_s + _LEASE_MARGIN_S, settings.worker_lease_s / 2)


def buffer_size(limit: int, settings: Settings) -> int:
    """How many deliveries a subscription with this in-flight limit may hold, in flight and waiting."""
    return max(_MIN_BUFFER_WAVES * limit, settings.worker_max_in_flight // _BUFFER_SHARE_OF_ROOM)


@dataclass
class _SubscriptionQueue:
    limit: int
    buffer: int
    in_flight: int = 0
    # Each waiting delivery with the end of its lease.
    waiting: deque[tuple[ClaimedDelivery, datetime]] = field(default_factory=deque)

    @property
    def saturated(self) -> bool:
        """Its buffer is in flight and waiting: a claim has nothing to give it."""
        return self.in_flight + len(self.waiting) >= self.buffer


@dataclass
class HandBack:
    """Waiting deliveries to hand back unattempted, due at `due_at` (when their breaker lets a probe through)."""

    delivery_ids: list[str]
    due_at: datetime


@dataclass
class Ready:
    """What a queue decided: batches to attempt now, deliveries to hand back, whether to claim more now."""

    batches: list[list[ClaimedDelivery]] = field(default_factory=list)
    hand_back: HandBack | None = None
    refill: bool = False


class SubscriptionQueues:
    """The queues of the subscriptions this worker holds deliveries of, each within its channel's in-flight limit."""

    def __init__(
        self, limits: Mapping[str, int], breakers: CircuitBreakers, hand_off_via: str | None, settings: Settings
    ) -> None:
        self._limits = limits
        self._breakers = breakers
        self._queues: dict[str, _SubscriptionQueue] = {}
        self._last_exclusive_claim = 0.0
        # Per subscription, handed-off deliveries not yet taken. Plain dicts here and in `add`: a Counter's subtract
        # and missing keys were Python calls on every hand-off.
        self._reserved: dict[str, int] = {}
        self._lease = timedelta(seconds=settings.worker_lease_s)
        self._attempt_bound = timedelta(seconds=attempt_bound_s(settings))
        self._claim_started = utcnow()
        self._left_out: set[str] = set()  # the subscriptions the last claim left out
        # Subscriptions a claim may have left due rows of: it took their cap, or left them out (saturated, breaker).
        # Kept apart from the queues, which go once empty: the rows stay until a claim takes them.
        self._left_behind: set[str] = set()
        self.claim_caps = {via: buffer_size(limit, settings) for via, limit in limits.items()}
        self._room = settings.worker_max_in_flight
        overflow = settings.worker_max_in_flight * _HAND_OFF_OVERFLOW_ROOMS
        # How many deliveries the worker may hold once hand-offs overflow the room claims fill.
        self.hand_off_room = self._room + overflow
        # A publish hands off only deliveries of this channel's subscriptions, so a hand-off is within its cap: its
        # buffer and its share of the overflow.
        share = overflow // _BUFFER_SHARE_OF_ROOM
        self.hand_off_cap = self.claim_caps[hand_off_via] + share if hand_off_via is not None else 0

    @property
    def busy(self) -> bool:
        """Whether any subscription has deliveries in flight or waiting."""
        return bool(self._queues)

    def claim_worthwhile(self) -> bool:
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

    def claim_room(self, held: int) -> int:
        """How many deliveries a claim may take while the worker holds `held`: its room, less what it holds within
        the subscriptions' buffers (what they hold beyond is the overflow's, not the claims'), never beyond
        `hand_off_room` in all."""
        overflowing = 0
        for subscription_id, queue in self._queues.items():
            beyond = queue.in_flight + len(queue.waiting) + self._reserved.get(subscription_id, 0) - queue.buffer
            if beyond > 0:
                overflowing += beyond
        return min(self._room + overflowing, self.hand_off_room) - held

    def left_out(self, now: datetime) -> set[str]:
        """The subscriptions a claim made now must leave out: saturated, or their breaker open.

        The claim's leases run from `now` (or later): what it takes is queued as leased until `now` plus the lease.
        """
        self._claim_started = now
        saturated = {sub for sub, queue in self._queues.items() if queue.saturated}
        if saturated:
            self._last_exclusive_claim = time.monotonic()
        excluded = saturated | self._breakers.blocked(now)
        self._left_behind |= excluded & self._queues.keys()
        self._left_out = excluded
        return excluded

    def found_all_due(self) -> None:
        """The usual claim came back short: it took every due row of the subscriptions it did not leave out, so
        those left none behind (whatever it took, and an announced claim, which looks at named rows only, says
        nothing of the rest)."""
        self._left_behind &= self._left_out

    def left_behind_with_room(self) -> bool:
        """Whether a subscription has due rows left behind and room for them now: the usual claim should run."""
        for subscription_id in self._left_behind:
            queue = self._queues.get(subscription_id)
            if (queue is None or not queue.saturated) and self._breakers.open_until(subscription_id) is None:
                return True
        return False

    def claimed(self, deliveries: Sequence[ClaimedDelivery], targets: Mapping[str, DeliveryTarget]) -> list[str]:
        """Queue what a claim took; the subscriptions to start. One that took its cap may have left due rows behind."""
        taken = self.add(deliveries, targets, self._claim_started + self._lease)
        for subscription_id, count in taken.items():
            if count >= self._queues[subscription_id].buffer:
                self._left_behind.add(subscription_id)
        return list(taken)

    def add(
        self, deliveries: Iterable[ClaimedDelivery], targets: Mapping[str, DeliveryTarget], leased_until: datetime
    ) -> dict[str, int]:
        """Queue deliveries leased until `leased_until` to wait for their turn; how many each subscription got."""
        taken: dict[str, int] = {}
        for delivery in deliveries:
            subscription_id = delivery.subscription_id
            self._queue_for(subscription_id, targets).waiting.append((delivery, leased_until))
            taken[subscription_id] = taken.get(subscription_id, 0) + 1
        return taken

    def start_ready(self, subscription_id: str, batching: bool) -> Ready:
        """Take what may start now within the subscription's limit (several per batch when its channel batches);
        while its breaker is open, or once the next one's lease has no room left for an attempt, hand all that
        waits back instead (all of it: a channel that keeps order must not send later ones first)."""
        ready = Ready()
        queue = self._queues[subscription_id]
        while queue.waiting and queue.in_flight < queue.limit:
            now = utcnow()
            if queue.waiting[0][1] - now < self._attempt_bound or not self._breakers.allows(subscription_id, now):
                ready.hand_back = self._hand_back_waiting(subscription_id)
                return ready
            probe = self._breakers.start_attempt(subscription_id, now)
            size = min(queue.limit - queue.in_flight, len(queue.waiting)) if batching and not probe else 1
            ready.batches.append(self._next_batch(queue, size, now))
            queue.in_flight += len(ready.batches[-1])
        return ready

    def _next_batch(self, queue: _SubscriptionQueue, size: int, now: datetime) -> list[ClaimedDelivery]:
        """Up to `size` waiting deliveries from the front whose leases have room for the attempt (at least one)."""
        batch = [queue.waiting.popleft()[0]]
        while len(batch) < size and queue.waiting[0][1] - now >= self._attempt_bound:
            batch.append(queue.waiting.popleft()[0])
        return batch

    def finished(self, subscription_id: str, count: int, hold_back: bool, batching: bool | None) -> Ready:
        """`count` attempts of a subscription ended: what starts next (None for `batching`: none may, it is gone).

        `hold_back` hands back what waits: its channel keeps one entity's records in order (Kafka), and what was
        published after a failed record waits for its retry (claims take such a subscription's pending rows in
        publishing order).
        """
        queue = self._queues[subscription_id]
        queue.in_flight -= count
        held_back = self._hand_back_waiting(subscription_id) if hold_back else None
        ready = self.start_ready(subscription_id, batching) if batching is not None else Ready()
        ready.hand_back = ready.hand_back or held_back
        if not queue.waiting:
            # Its buffer ran dry and due rows may be left: claim more now rather than at the next poll.
            ready.refill = subscription_id in self._left_behind
            if queue.in_flight == 0:
                self._queues.pop(subscription_id, None)
        return ready

    def drain(self) -> list[str]:
        """Empty every queue's waiting deliveries (the worker stops); their ids, to hand back."""
        waiting = [delivery.id for queue in self._queues.values() for delivery, _until in queue.waiting]
        for queue in self._queues.values():
            queue.waiting.clear()
        return waiting

    def may_hand_off(self, subscription_id: str) -> bool:
        """Whether a new delivery of this subscription may skip the claim: its breaker closed, and its buffer or its
        share of the overflow not full; while due rows of it are left behind in the database, half its buffer."""
        if self._breakers.open_until(subscription_id) is not None:
            return False
        queue = self._queues.get(subscription_id)
        held = self._reserved.get(subscription_id, 0)
        if queue is None:
            return held < self.hand_off_cap
        held += queue.in_flight + len(queue.waiting)
        if subscription_id in self._left_behind:
            return held < queue.buffer // _LEFT_BEHIND_SHARE_OF_BUFFER
        return held < self.hand_off_cap

    def reserve(self, subscription_id: str) -> None:
        """Count a handed-off delivery of this subscription as held before it is taken."""
        self._reserved[subscription_id] = self._reserved.get(subscription_id, 0) + 1

    def unreserve(self, subscription_ids: Iterable[str]) -> None:
        """Stop counting handed-off deliveries (taken, or their publish did not commit)."""
        reserved = self._reserved
        for subscription_id in subscription_ids:
            left = reserved.get(subscription_id, 0) - 1
            if left > 0:
                reserved[subscription_id] = left
            else:
                reserved.pop(subscription_id, None)

    def _hand_back_waiting(self, subscription_id: str) -> HandBack:
        queue = self._queues[subscription_id]
        waiting = [delivery.id for delivery, _until in queue.waiting]
        queue.waiting.clear()
        return HandBack(waiting, self._breakers.open_until(subscription_id) or utcnow())

    def _queue_for(self, subscription_id: str, targets: Mapping[str, DeliveryTarget]) -> _SubscriptionQueue:
        queue = self._queues.get(subscription_id)
        if queue is None:
            target = targets.get(subscription_id)
            via = target.subscription.via if target else None
            limit = self._limits[via] if via is not None else 1
            buffer = self.claim_caps[via] if via is not None else _MIN_BUFFER_WAVES
            queue = self._queues[subscription_id] = _SubscriptionQueue(limit, buffer)
        return queue
