"""A publish's events as columns: built from events, and numbered in order when several publishes share a commit."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from chargewire.clock import utcnow
from chargewire.ids import new_ids
from chargewire.models import Event
from chargewire.store.event_store import NewEvents, _event_columns


def _events(count: int, received_at: datetime) -> list[Event]:
    return [
        Event(id=event_id, name="BootNotification", payload=b"{}", entity_id=str(index), received_at=received_at)
        for index, event_id in enumerate(new_ids("evt", count))
    ]


def test_new_events_hold_each_column_in_the_order_of_the_events() -> None:
    written = _events(3, utcnow())
    batch = NewEvents.of(written)
    assert len(batch) == 3
    assert batch.ids == [event.id for event in written]
    assert batch.entity_ids == ["0", "1", "2"]
    assert batch.received_at == written[0].received_at


def test_new_events_refuse_events_of_different_publishes() -> None:
    now = utcnow()
    with pytest.raises(ValueError, match="received_at"):
        NewEvents.of([*_events(1, now), *_events(1, now + timedelta(seconds=1))])


def test_publishes_sharing_a_commit_are_numbered_in_order_each_with_its_own_time() -> None:
    first, second = utcnow(), utcnow() + timedelta(seconds=1)
    batches = [NewEvents.of(_events(2, first)), NewEvents.of(_events(3, second))]
    ids, names, payloads, entity_ids, received, seqs = _event_columns(batches, lambda at: at.isoformat(), 41)
    assert ids == [*batches[0].ids, *batches[1].ids]
    assert entity_ids == ["0", "1", "0", "1", "2"]
    assert received == [first.isoformat()] * 2 + [second.isoformat()] * 3
    assert list(seqs) == [41, 42, 43, 44, 45]
    assert len(names) == len(payloads) == 5


def test_test_sends_carry_no_number() -> None:
    [*_, seqs] = _event_columns([NewEvents.of(_events(2, utcnow()))], lambda at: at, None)
    assert list(seqs) == [None, None]
