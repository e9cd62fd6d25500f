"""Group commit: concurrent publishes share one transaction, and each is answered after that commit.

The first writer starts a flush; writers that arrive while it commits wait for the next one, which takes
them all. Under load, many single-event requests become one transaction; alone, a request is written at
once. Each event is validated before it joins a group, so a group fails together only for a database
error, and then every writer in it gets that error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chargewire.ids import new_ids
from chargewire.models import Event
from chargewire.services.payload_filter import matches
from chargewire.store.event_store import EventStore, FanOut, NewDelivery, Subscriber

# Bounds one transaction's size; a bigger backlog is written in several.
MAX_EVENTS_PER_COMMIT = 5000


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """A validated event and its parsed payload, which subscription filters read."""

    event: Event
    payload: dict[str, Any]


class GroupCommitter:
    """Writes events with their deliveries, grouping writers that arrive together into one transaction."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._waiting: list[tuple[list[PendingEvent], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def write(self, pending: list[PendingEvent]) -> None:
        """Store these events durably (returns after their commit)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((pending, future))
        if self._flusher is None or self._flusher.done():
            # A task of its own: a writer that gives up (a client disconnecting) never aborts the others' commit.
            self._flusher = asyncio.create_task(self._flush_all())
        await future

    async def _flush_all(self) -> None:
        while self._waiting:
            group = self._take_group()
            items = [item for pending, _ in group for item in pending]
            try:
                await self._store.insert_events_with_deliveries([item.event for item in items], _fan_out(items))
            except Exception as error:
                for _, future in group:
                    if not future.done():
                        future.set_exception(error)
            else:
                for _, future in group:
                    if not future.done():
                        future.set_result(None)

    def _take_group(self) -> list[tuple[list[PendingEvent], asyncio.Future[None]]]:
        group: list[tuple[list[PendingEvent], asyncio.Future[None]]] = []
        size = 0
        while self._waiting and (not group or size + len(self._waiting[0][0]) <= MAX_EVENTS_PER_COMMIT):
            item = self._waiting.pop(0)
            group.append(item)
            size += len(item[0])
        return group


def _fan_out(pending: Sequence[PendingEvent]) -> FanOut:
    """One delivery per (event, enabled subscriber whose filter matches the payload)."""

    def deliveries(subscribers: Sequence[Subscriber]) -> list[NewDelivery]:
        by_name: dict[str, list[Subscriber]] = {}
        for subscriber in subscribers:
            by_name.setdefault(subscriber.event_name, []).append(subscriber)
        targets = [
            (item.event, subscriber.subscription_id)
            for item in pending
            for subscriber in by_name.get(item.event.name, ())
            if matches(subscriber.filter, item.payload)
        ]
        delivery_ids = new_ids("dlv", len(targets))
        return [
            NewDelivery(delivery_id, event.id, subscription_id, event.name)
            for delivery_id, (event, subscription_id) in zip(delivery_ids, targets, strict=True)
        ]

    return deliveries
