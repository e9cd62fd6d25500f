"""Publishing: validate payloads, then store each event with one delivery per matching subscription."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import orjson

from chargewire.catalog import EventType, validated_event_type
from chargewire.clock import utcnow
from chargewire.errors import ValidationFailed
from chargewire.ids import new_id, new_ids
from chargewire.models import Event
from chargewire.services.group_commit import GroupCommitter, HandOff, PendingBatch
from chargewire.storable import storable
from chargewire.store.dialects.base import Announced
from chargewire.store.event_store import ENTITY_ID_MAX_CHARS, EventStore, NewEvents

# Told after a publish which webhook deliveries it made due, and whether its commit woke other processes' workers
# itself (`WakeSignal.fire`).
PublishListener = Callable[[Announced, bool], None]


class Publisher:
    """Accepts events: all of a batch or none of it."""

    def __init__(self, store: EventStore, max_batch: int) -> None:
        self._store = store
        self._committer = GroupCommitter(store)
        self.max_batch = max_batch
        self._listeners: list[PublishListener] = []
        self._row_listeners: list[Callable[[], None]] = []
        self._hand_off_listeners: list[Callable[[], None]] = []

    async def publish(self, payloads: Sequence[object], *, operational: bool = False) -> list[str]:
        """Validate every payload and store them durably; returns the new event ids in order.

        Raises ValidationFailed with fields keyed `index.path` when any payload is invalid; then nothing
        is stored.
        """
        return await self.write(self.prepare(payloads, operational=operational))

    def prepare(self, payloads: Sequence[object], *, operational: bool = False) -> PendingBatch:
        """Validate every payload and give them ids, ready to `write`; ValidationFailed as `publish` says."""
        if not payloads:
            raise ValidationFailed({"(body)": ["At least one event is required."]})
        if len(payloads) > self.max_batch:
            raise ValidationFailed({"(body)": [f"A batch holds at most {self.max_batch} events; got {len(payloads)}."]})
        event_types, entity_ids = _validate_all(payloads, operational)
        valid = cast(Sequence[dict[str, Any]], payloads)
        events = NewEvents(
            ids=new_ids("evt", len(valid)),
            names=[event_type.name for event_type in event_types],
            payloads=[orjson.dumps(payload) for payload in valid],
            entity_ids=entity_ids,
            received_at=utcnow(),
        )
        return PendingBatch(events, valid)

    async def write(self, batch: PendingBatch) -> list[str]:
        """Store a prepared batch durably (with its idempotency key, if it has one); returns its event ids.

        IdempotencyKeyTaken when another publish stored the batch's key first; then nothing is stored.
        """
        made = await self._committer.write(batch)
        if made.handed and not made.due:
            # Nothing is due for any worker to claim: only the callbacks given to `hand_off_to` hear of it.
            for callback in self._hand_off_listeners:
                callback()
        else:
            self._notify(made.announced, made.woken)
        return list(batch.events.ids)

    async def publish_to(self, subscription_id: str, payload: dict[str, Any]) -> tuple[str, str]:
        """Store a validated event for one subscription only (a test send); returns (event id, delivery id)."""
        [event_type], [entity_id] = _validate_all([payload])
        event = Event(new_id("evt"), event_type.name, orjson.dumps(payload), entity_id, utcnow())
        delivery_id = new_id("dlv")
        await self._store.insert_event_for_subscription(event, delivery_id, subscription_id)
        self._notify([(delivery_id, subscription_id)], False)
        return event.id, delivery_id

    def on_published(self, callback: PublishListener) -> None:
        """Call `callback` after every publish (a local dispatcher wakes up instead of waiting to poll), except one
        whose every delivery was handed off (`hand_off_to`), with the deliveries it made due and whether its commit
        woke other processes' workers itself."""
        self._listeners.append(callback)

    def hand_off_to(self, hand_off: HandOff, callback: Callable[[], None]) -> None:
        """Give new deliveries that `hand_off` has room for straight to it (`group_commit`); after a publish whose
        every delivery it took, call only `callback` (instead of `on_published`'s callbacks)."""
        self._committer.hand_off = hand_off
        self._hand_off_listeners.append(callback)

    def on_rows_made(self, callback: Callable[[], None]) -> None:
        """Call `callback` after a publish that made deliveries, just before the `on_published` callbacks."""
        self._row_listeners.append(callback)

    def _notify(self, announced: Announced, woken: bool) -> None:
        if announced:
            for row_listener in self._row_listeners:
                row_listener()
        for callback in self._listeners:
            callback(announced, woken)


def _validate_all(payloads: Sequence[object], operational: bool = False) -> tuple[list[EventType], list[str | None]]:
    """The event type and entity id of each payload, in order; ValidationFailed naming `index.field` if any is
    invalid.

    An entity id must also fit the column that holds it (`ENTITY_ID_MAX_CHARS`, no NUL, valid UTF-8), so that
    both databases give the same answer, before the transaction: PostgreSQL would refuse it there and fail the
    publishes sharing its group commit.
    """
    event_types: list[EventType] = []
    entity_ids: list[str | None] = []
    errors: dict[str, list[str]] = {}
    for index, payload in enumerate(payloads):
        try:
            event_type = validated_event_type(payload)
        except ValidationFailed as failure:
            for field, messages in failure.errors.items():
                errors[f"{index}.{field}"] = messages
            continue
        if event_type.operational and not operational:
            errors[f"{index}.notification"] = [
                f"{event_type.name!r} is sent by chargewire itself and cannot be published."
            ]
            continue
        entity_id = event_type.entity_id(cast(dict[str, Any], payload))
        problem = _entity_id_problem(entity_id)
        if problem is not None:
            errors[f"{index}.{'.'.join(event_type.entity_path or ())}"] = [problem]
        event_types.append(event_type)
        entity_ids.append(entity_id)
    if errors:
        raise ValidationFailed(errors)
    return event_types, entity_ids


def _entity_id_problem(entity_id: str | None) -> str | None:
    """What keeps an entity id from being stored alike on both databases, or None."""
    if entity_id is None:
        return None
    if len(entity_id) > ENTITY_ID_MAX_CHARS:
        return f"This field identifies the event's entity, and may be at most {ENTITY_ID_MAX_CHARS} characters."
    if not storable(entity_id):
        return "This field identifies the event's entity, and must be text without NUL characters."
    return None
