"""The delivery log and its actions: list, inspect with attempts, retry now, and send a test event."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, replace

from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from chargewire.ids import has_prefix
from chargewire.models import Attempt, Delivery
from chargewire.services.publish import Publisher
from chargewire.services.subscriptions import Caller, SubscriptionService
from chargewire.store.delivery_log import DeliveryFilter
from chargewire.store.delivery_store import DeliveryStore
from chargewire.store.event_store import EventStore

MAX_PER_PAGE = 100


@dataclass(frozen=True, slots=True)
class DeliveryDetail:
    """A delivery with its attempts and the exact bytes every attempt sent."""

    delivery: Delivery
    attempts: list[Attempt]
    payload: bytes


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    """Deliveries newest first, and the cursor of the next (older) page if there is one."""

    deliveries: list[Delivery]
    next_cursor: str | None


class DeliveryService:
    """What callers may see and do with deliveries: only those of subscriptions they may see."""

    def __init__(
        self,
        store: DeliveryStore,
        events: EventStore,
        subscriptions: SubscriptionService,
        publisher: Publisher,
        *,
        on_due: Callable[[], None],
    ) -> None:
        self._store = store
        self._events = events
        self._subscriptions = subscriptions
        # Test sends go through the publisher, which wakes workers itself; retries wake them through on_due.
        self._publisher = publisher
        self._on_due = on_due

    async def list_page(self, caller: Caller, where: DeliveryFilter, cursor: str | None, per_page: int) -> DeliveryPage:
        """One page of the delivery log."""
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise ValidationFailed({"per_page": [f"Must be between 1 and {MAX_PER_PAGE}."]})
        _check_filter(where)
        if where.subscription_id is not None:
            await self._subscriptions.get(caller, where.subscription_id)
        if not caller.sees_all:
            where = replace(where, owner_token_id=caller.token_id)
        rows = await self._store.list_deliveries(where, _decode_cursor(cursor), per_page + 1)
        more = len(rows) > per_page
        rows = rows[:per_page]
        return DeliveryPage(rows, _encode_cursor(rows[-1].id) if more else None)

    async def get(self, caller: Caller, delivery_id: str) -> DeliveryDetail:
        """A delivery with its attempts and payload."""
        found = await self._store.get_delivery(delivery_id) if has_prefix(delivery_id, "dlv") else None
        if found is None:
            raise NotFound("No delivery with that id.")
        delivery, owner = found
        if not caller.sees_all and owner != caller.token_id:
            raise PermissionDenied()
        [event] = await self._events.get_events([delivery.event_id])
        return DeliveryDetail(delivery, await self._store.list_attempts(delivery_id), event.payload)

    async def retry(self, caller: Caller, delivery_id: str) -> Delivery:
        """Attempt a delivery now; a delivered or failed one gets exactly one more attempt."""
        await self.get(caller, delivery_id)
        if not await self._store.schedule_now(delivery_id, utcnow()):
            raise Conflict("The delivery is being attempted right now; try again in a moment.")
        self._on_due()
        return (await self.get(caller, delivery_id)).delivery

    async def test_send(self, caller: Caller, subscription_id: str, event_name: str | None) -> tuple[str, str]:
        """Send the catalog's example of an event to one subscription now; returns (event id, delivery id)."""
        subscription = await self._subscriptions.get(caller, subscription_id)
        name = event_name or subscription.notifications[0]
        event_type = load_event_types().get(name)
        if event_type is None:
            raise ValidationFailed({"notification": [f"Unknown event type {name!r}."]})
        return await self._publisher.publish_to(subscription.id, event_type.example)


def _check_filter(where: DeliveryFilter) -> None:
    """Refuse filter values that can match nothing (and must never reach SQL as arbitrary bytes)."""
    errors: dict[str, list[str]] = {}
    if where.event_id is not None and not has_prefix(where.event_id, "evt"):
        errors["event"] = ["Must be an event id (evt_...)."]
    if where.subscription_id is not None and not has_prefix(where.subscription_id, "sub"):
        errors["subscription"] = ["Must be a subscription id (sub_...)."]
    if where.event_name is not None and where.event_name not in load_event_types():
        errors["notification"] = [f"Unknown event type {where.event_name!r}."]
    if errors:
        raise ValidationFailed(errors)


def _encode_cursor(delivery_id: str) -> str:
    return base64.urlsafe_b64encode(delivery_id.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        value = ""
    if not has_prefix(value, "dlv"):
        raise ValidationFailed({"cursor": ["The cursor is not valid."]})
    return value
