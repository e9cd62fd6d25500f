"""Group commit: concurrent publishes share one transaction, and each is answered after that commit.

The first writer starts a flush; writers that arrive while it commits wait for the next one, which takes
them all. Under load, many single-event requests become one transaction; alone, a request is written at
once. Each event is validated before it joins a group (its entity id too, against the column), so a group
fails together only for a database error, and then every writer in it gets that error. Should the database
still refuse a row of the group, or another process have stored one of its idempotency keys first, its writers
are written one by one, and only the one whose row or key it was fails.

Hand-off: in a process that runs a dispatcher, the group's new deliveries that it has room for are written
leased to it (`HandOff.reserve`, inside the transaction) and given to it after the commit (`take`), so their
first attempt needs no claim; a transaction that fails gives the room back (`cancel`). The lease in the row
still protects them: if this process dies before they are recorded, the lease runs out and any worker claims
them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from chargewire.errors import IdempotencyKeyTaken
from chargewire.filters import FilterCache, Predicate
from chargewire.ids import new_ids
from chargewire.store.delivery_records import ClaimedDelivery
from chargewire.store.delivery_writes import NewDelivery, PublishLease
from chargewire.store.dialects.base import go_first
from chargewire.store.event_store import EventStore, NewEvents, Subscriber
from chargewire.store.idempotency_store import IdempotentPublish
from chargewire.store.refusals import refused

# Bounds one transaction's size; a bigger backlog is written in several.
MAX_EVENTS_PER_COMMIT = 5000


@dataclass(frozen=True, slots=True)
class PendingBatch:
    """One publish's validated events and, in the same order, their parsed payloads (filters read those); and
    the idempotency key to store with them, if it was sent with one."""

    events: NewEvents
    payloads: Sequence[dict[str, Any]]
    claim: IdempotentPublish | None = None


@dataclass(frozen=True, slots=True)
class Made:
    """The deliveries a group's commit made: `due` ones for any worker to claim, and those `handed` to this
    process's dispatcher; the due ones as (delivery id, subscription id), for the wake-up to name; and whether the
    commit itself woke other processes' workers (`woken`), naming them."""

    due: int
    handed: int
    announced: tuple[tuple[str, str], ...] = ()
    woken: bool = False


class HandOff(Protocol):
    """A dispatcher in this process that takes freshly published deliveries without claiming them."""

    def reserve(self, deliveries: Sequence[NewDelivery]) -> PublishLease | None:
        """Make room for those of `deliveries` it can take now; the lease to write them under, or None."""
        ...

    def take(self, lease: PublishLease, deliveries: Sequence[ClaimedDelivery]) -> None:
        """Send the deliveries of `lease`, now committed."""
        ...

    def cancel(self, lease: PublishLease) -> None:
        """Give back the room of `lease`: its transaction did not commit."""
        ...


# A writer waiting in a group: its events, and the future its publish awaits (the deliveries its commit made).
_Writer = tuple[PendingBatch, asyncio.Future[Made]]


class GroupCommitter:
    """Writes events with their deliveries, grouping writers that arrive together into one transaction."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._waiting: list[_Writer] = []
        self._flusher: asyncio.Task[None] | None = None
        self._filters = FilterCache()
        self.hand_off: HandOff | None = None

    async def write(self, batch: PendingBatch) -> Made:
        """Store these events durably; returns after their commit, with the deliveries that commit made (its
        whole group's)."""
        future: asyncio.Future[Made] = asyncio.get_running_loop().create_future()
        self._waiting.append((batch, future))
        if self._flusher is None or self._flusher.done():
            # A task of its own: a writer that gives up (a client disconnecting) never aborts the others' commit.
            self._flusher = asyncio.create_task(self._flush_all())
        return await future

    async def _flush_all(self) -> None:
        # Its clients wait for their answers: its commits take the writer before waiting record flushes and claims
        # (on SQLite; elsewhere nothing waits for a writer). Set in this task's own context, so only its writes do.
        go_first()
        while self._waiting:
            group = self._take_group()
            outcome = await self._insert(group)
            if (
                isinstance(outcome, Exception)
                and len(group) > 1
                and (refused(outcome) or isinstance(outcome, IdempotencyKeyTaken))
            ):
                # A row the database refused, or a key taken, belongs to one writer: each is written alone, so
                # only it fails.
                for member in group:
                    _settle([member], await self._insert([member]))
            else:
                _settle(group, outcome)

    async def _insert(self, group: Sequence[_Writer]) -> Exception | Made:
        """Write the writers' events and deliveries in one transaction; the deliveries made, or the error."""
        batches = [batch for batch, _ in group]
        fan_out = _FanOut(batches, self._filters, self.hand_off)
        try:
            inserted = await self._store.insert_events_with_deliveries(
                [batch.events for batch in batches],
                fan_out,
                claims=[batch.claim for batch in batches if batch.claim is not None],
            )
        except Exception as error:
            if fan_out.leased is not None and self.hand_off is not None:
                self.hand_off.cancel(fan_out.leased)
            return error
        if fan_out.leased is None or self.hand_off is None:
            return Made(inserted.count, 0, fan_out.due(None), inserted.woken)
        if not (inserted.woken and fan_out.leased.elsewhere):  # else its NOTIFY took them to their worker
            self.hand_off.take(fan_out.leased, fan_out.claimed(fan_out.leased))
        handed = len(fan_out.leased.delivery_ids)
        return Made(inserted.count - handed, handed, fan_out.due(fan_out.leased), inserted.woken)

    def _take_group(self) -> list[_Writer]:
        if len(self._waiting) == 1:
            # A writer alone (most of them, below a few hundred events a second): the list is the group.
            alone, self._waiting = self._waiting, []
            return alone
        group: list[_Writer] = []
        size = 0
        while self._waiting and (not group or size + len(self._waiting[0][0].events) <= MAX_EVENTS_PER_COMMIT):
            item = self._waiting.pop(0)
            group.append(item)
            size += len(item[0].events)
        return group


def _settle(group: Sequence[_Writer], outcome: Exception | Made) -> None:
    """Answer each writer still waiting: stored (with the deliveries made), or the error."""
    for _, future in group:
        if future.done():
            continue
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class _FanOut:
    """One delivery per (event, enabled subscriber whose filter matches the payload), with filters compiled once."""

    def __init__(self, batches: Sequence[PendingBatch], filters: FilterCache, hand_off: HandOff | None) -> None:
        self._batches = batches
        self._filters = filters
        self._hand_off = hand_off
        self._made: list[NewDelivery] = []
        self.leased: PublishLease | None = None  # what the hand-off reserved, once the deliveries are made

    def filters_wanted(self, subscribers: Sequence[Subscriber]) -> Collection[str]:
        """The subscribers whose filter was not compiled at their current version."""
        return {s.subscription_id for s in subscribers if self._filters.get(s.subscription_id, s.version) is None}

    def deliveries(
        self, subscribers: Sequence[Subscriber], filters: Mapping[str, dict[str, Any] | None]
    ) -> list[NewDelivery]:
        """The deliveries of every batch's events, in order."""
        by_name: dict[str, list[tuple[str, Predicate]]] = {}
        for subscriber in subscribers:
            sid, version = subscriber.subscription_id, subscriber.version
            predicate = self._filters.get(sid, version) or self._filters.put(sid, version, filters.get(sid))
            by_name.setdefault(subscriber.event_name, []).append((sid, predicate))
        # Parallel lists rather than a tuple per delivery: fewer objects for the garbage collector to track.
        matched_events: list[str] = []
        matched_names: list[str] = []
        matched_subscriptions: list[str] = []
        for batch in self._batches:
            events = batch.events
            for event_id, name, payload in zip(events.ids, events.names, batch.payloads, strict=True):
                for subscription_id, predicate in by_name.get(name, ()):
                    if predicate(payload):
                        matched_events.append(event_id)
                        matched_names.append(name)
                        matched_subscriptions.append(subscription_id)
        delivery_ids = new_ids("dlv", len(matched_events))
        self._made = [
            NewDelivery(delivery_id, event_id, subscription_id, name)
            for delivery_id, event_id, subscription_id, name in zip(
                delivery_ids, matched_events, matched_subscriptions, matched_names, strict=True
            )
        ]
        if self._hand_off is not None:
            # Made again from other subscribers (the store's guess of them was wrong): the room taken for the
            # deliveries made before is given back first.
            if self.leased is not None:
                self._hand_off.cancel(self.leased)
                self.leased = None
            if self._made:
                self.leased = self._hand_off.reserve(self._made)
        return self._made

    def lease(self) -> PublishLease | None:
        """The deliveries the hand-off reserved, to write leased to its worker."""
        return self.leased

    def due(self, lease: PublishLease | None) -> tuple[tuple[str, str], ...]:
        """The deliveries made that `lease` does not hold, as (delivery id, subscription id), in id order."""
        leased = lease.delivery_ids if lease is not None else frozenset()
        return tuple((d.id, d.subscription_id) for d in self._made if d.id not in leased)

    def claimed(self, lease: PublishLease) -> list[ClaimedDelivery]:
        """The leased deliveries as their worker sends them, in publish order, with their events' bytes."""
        events: dict[str, tuple[bytes, str | None, Any]] = {}
        for batch in self._batches:
            columns = batch.events
            for event_id, payload, entity_id in zip(columns.ids, columns.payloads, columns.entity_ids, strict=True):
                events[event_id] = (payload, entity_id, columns.received_at)
        return [
            ClaimedDelivery(d.id, d.event_id, d.subscription_id, d.event_name, 0, None, *events[d.event_id])
            for d in self._made
            if d.id in lease.delivery_ids
        ]
