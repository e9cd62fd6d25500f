"""Group commit: concurrent publishes share one transaction, and each is answered after that commit.

The first writer starts a flush; writers that arrive while it commits wait for the next one, which takes
them all. Under load, many single-event requests become one transaction; alone, a request is written at
once. Each event is validated before it joins a group (its entity id too, against the column), so a group
fails together only for a database error, and then every writer in it gets that error. Should the database
still refuse a row of the group, its writers are written one by one, and only the one whose row it was fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chargewire.ids import new_ids
from chargewire.services.payload_filter import matches
from chargewire.store.event_store import EventStore, FanOut, NewDelivery, NewEvents, Subscriber
from chargewire.store.refusals import refused

# Bounds one transaction's size; a bigger backlog is written in several.
MAX_EVENTS_PER_COMMIT = 5000


@dataclass(frozen=True, slots=True)
class PendingBatch:
    """One publish's validated events and, in the same order, their parsed payloads (filters read those)."""

    events: NewEvents
    payloads: Sequence[dict[str, Any]]


# A writer waiting in a group: its events, and the future its publish awaits.
_Writer = tuple[PendingBatch, asyncio.Future[None]]


class GroupCommitter:
    """Writes events with their deliveries, grouping writers that arrive together into one transaction."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._waiting: list[_Writer] = []
        self._flusher: asyncio.Task[None] | None = None

    async def write(self, batch: PendingBatch) -> None:
        """Store these events durably (returns after their commit)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((batch, future))
        if self._flusher is None or self._flusher.done():
            # A task of its own: a writer that gives up (a client disconnecting) never aborts the others' commit.
            self._flusher = asyncio.create_task(self._flush_all())
        await future

    async def _flush_all(self) -> None:
        while self._waiting:
            group = self._take_group()
            error = await self._insert(group)
            if error is not None and len(group) > 1 and refused(error):
                # A row the database refused belongs to one writer: each is written alone, so only it fails.
                for member in group:
                    _settle([member], await self._insert([member]))
            else:
                _settle(group, error)

    async def _insert(self, group: Sequence[_Writer]) -> Exception | None:
        """Write the writers' events and deliveries in one transaction; the error if it failed."""
        batches = [batch for batch, _ in group]
        try:
            await self._store.insert_events_with_deliveries([batch.events for batch in batches], _fan_out(batches))
        except Exception as error:
            return error
        return None

    def _take_group(self) -> list[_Writer]:
        group: list[_Writer] = []
        size = 0
        while self._waiting and (not group or size + len(self._waiting[0][0].events) <= MAX_EVENTS_PER_COMMIT):
            item = self._waiting.pop(0)
            group.append(item)
            size += len(item[0].events)
        return group


def _settle(group: Sequence[_Writer], error: Exception | None) -> None:
    """Answer each writer still waiting: stored, or the error."""
    for _, future in group:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def _fan_out(batches: Sequence[PendingBatch]) -> FanOut:
    """One delivery per (event, enabled subscriber whose filter matches the payload)."""

    def deliveries(subscribers: Sequence[Subscriber]) -> list[NewDelivery]:
        by_name: dict[str, list[Subscriber]] = {}
        for subscriber in subscribers:
            by_name.setdefault(subscriber.event_name, []).append(subscriber)
        # Parallel lists rather than a tuple per delivery: fewer objects for the garbage collector to track.
        matched_events: list[str] = []
        matched_names: list[str] = []
        matched_subscriptions: list[str] = []
        for batch in batches:
            events = batch.events
            for event_id, name, payload in zip(events.ids, events.names, batch.payloads, strict=True):
                for subscriber in by_name.get(name, ()):
                    if matches(subscriber.filter, payload):
                        matched_events.append(event_id)
                        matched_names.append(name)
                        matched_subscriptions.append(subscriber.subscription_id)
        delivery_ids = new_ids("dlv", len(matched_events))
        return [
            NewDelivery(delivery_id, event_id, subscription_id, name)
            for delivery_id, event_id, subscription_id, name in zip(
                delivery_ids, matched_events, matched_subscriptions, matched_names, strict=True
            )
        ]

    return deliveries
