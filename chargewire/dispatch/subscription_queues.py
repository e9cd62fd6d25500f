"""One worker's per-subscription queues: what is in flight and waiting, and what may start, be claimed or be handed off.

At most a subscription's in-flight limit runs at once, with up to `_BUFFER_WAVES - 1` waves more waiting in memory to
start the moment one ends. A subscription whose buffer is full (saturated), or whose circuit breaker is open, is left
out of the next claim. These queues decide; the dispatcher starts the tasks and writes the leases they hand back.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from chargewire.clock import utcnow
from chargewire.dispatch.breaker import CircuitBreakers
from chargewire.dispatch.targets import DeliveryTarget
from chargewire.store.delivery_records import ClaimedDelivery

# Per subscription, a claim takes up to this many waves of its in-flight limit, and a worker holds no more:
# fewer claims (each a database round trip) per delivery. With a 15 s timeout the last wave starts ~45 s in,
# inside the 60 s lease.
_BUFFER_WAVES = 4
# While every subscription a worker serves is saturated, claims without announced news run at most this often.
_EXCLUSIVE_CLAIM_INTERVAL_S = 1.0


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

    def __init__(self, limits: Mapping[str, int], breakers: CircuitBreakers, hand_off_via: str | None) -> None:
        self._limits = limits
        self._breakers = breakers
        self._queues: dict[str, _SubscriptionQueue] = {}
        self._last_exclusive_claim = 0.0
        self._reserved: Counter[str] = Counter()  # per subscription, handed-off deliveries not yet taken
        self.claim_caps = {via: _BUFFER_WAVES * limit for via, limit in limits.items()}
        # A publish hands off only deliveries of this channel's subscriptions, so a hand-off is within its cap.
        self.hand_off_cap = self.claim_caps[hand_off_via] if hand_off_via is not None else 0

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

    def left_out(self, now: datetime) -> set[str]:
        """The subscriptions a claim made now must leave out: saturated, or their breaker open."""
        saturated = {sub for sub, queue in self._queues.items() if queue.saturated}
        if saturated:
            self._last_exclusive_claim = time.monotonic()
        excluded = saturated | self._breakers.blocked(now)
        for subscription_id in excluded & self._queues.keys():
            self._queues[subscription_id].left_behind = True
        return excluded

    def claimed(self, deliveries: Sequence[ClaimedDelivery], targets: Mapping[str, DeliveryTarget]) -> list[str]:
        """Queue what a claim took; the subscriptions to start. One that took its cap may have left due rows behind."""
        taken = self.add(deliveries, targets)
        for subscription_id, count in taken.items():
            queue = self._queues[subscription_id]
            queue.left_behind = count >= _BUFFER_WAVES * queue.limit
        return list(taken)

    def add(self, deliveries: Iterable[ClaimedDelivery], targets: Mapping[str, DeliveryTarget]) -> Counter[str]:
        """Queue deliveries to wait for their turn; how many each subscription got."""
        taken: Counter[str] = Counter()
        for delivery in deliveries:
            self._queue_for(delivery.subscription_id, targets).waiting.append(delivery)
            taken[delivery.subscription_id] += 1
        return taken

    def start_ready(self, subscription_id: str, batching: bool) -> Ready:
        """Take what may start now within the subscription's limit (several per batch when its channel batches);
        while its breaker is open, hand all that waits back instead."""
        ready = Ready()
        queue = self._queues[subscription_id]
        while queue.waiting and queue.in_flight < queue.limit:
            now = utcnow()
            if not self._breakers.allows(subscription_id, now):
                ready.hand_back = self._hand_back_waiting(subscription_id)
                return ready
            probe = self._breakers.start_attempt(subscription_id, now)
            size = min(queue.limit - queue.in_flight, len(queue.waiting)) if batching and not probe else 1
            ready.batches.append([queue.waiting.popleft() for _ in range(size)])
            queue.in_flight += size
        return ready

    def finished(self, subscription_id: str, count: int, hold_back: bool, batching: bool | None) -> Ready:
        """`count` attempts of a subscription ended: what starts next (None for `batching`: none may, it is gone).

        `hold_back` hands back what waits: its channel keeps one entity's records in order (Kafka), and what was
        published after a failed record waits for its retry (claims take such a subscription's pending rows in
        publishing order).
        """
        queue = self._queues[subscription_id]
        queue.in_flight -= count
        ready = Ready(hand_back=self._hand_back_waiting(subscription_id)) if hold_back else Ready()
        if batching is not None:
            started = self.start_ready(subscription_id, batching)
            ready.batches = started.batches
            ready.hand_back = started.hand_back or ready.hand_back
        if not queue.waiting:
            # Its buffer ran dry and due rows may be left: claim more now rather than at the next poll.
            ready.refill = queue.left_behind
            if queue.in_flight == 0:
                self._queues.pop(subscription_id, None)
        return ready

    def drain(self) -> list[str]:
        """Empty every queue's waiting deliveries (the worker stops); their ids, to hand back."""
        waiting = [delivery.id for queue in self._queues.values() for delivery in queue.waiting]
        for queue in self._queues.values():
            queue.waiting.clear()
        return waiting

    def may_hand_off(self, subscription_id: str) -> bool:
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
        return held < self.hand_off_cap

    def reserve(self, subscription_id: str) -> None:
        """Count a handed-off delivery of this subscription as held before it is taken."""
        self._reserved[subscription_id] += 1

    def unreserve(self, subscription_ids: Iterable[str]) -> None:
        """Stop counting handed-off deliveries (taken, or their publish did not commit)."""
        subscription_ids = list(subscription_ids)
        self._reserved.subtract(subscription_ids)
        for subscription_id in set(subscription_ids):
            if self._reserved[subscription_id] <= 0:
                del self._reserved[subscription_id]

    def _hand_back_waiting(self, subscription_id: str) -> HandBack:
        queue = self._queues[subscription_id]
        waiting = [delivery.id for delivery in queue.waiting]
        queue.waiting.clear()
        return HandBack(waiting, self._breakers.open_until(subscription_id) or utcnow())

    def _queue_for(self, subscription_id: str, targets: Mapping[str, DeliveryTarget]) -> _SubscriptionQueue:
        queue = self._queues.get(subscription_id)
        if queue is None:
            target = targets.get(subscription_id)
            limit = self._limits[target.subscription.via] if target else 1
            queue = self._queues[subscription_id] = _SubscriptionQueue(limit)
        return queue
