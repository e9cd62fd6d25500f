"""A publish's events as columns: built from events, and numbered in order when several publishes share a commit."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy.dialects import sqlite

from chargewire.clock import utcnow
from chargewire.ids import new_ids
from chargewire.models import Event
from chargewire.store.bulk_insert import driver_value
from chargewire.store.event_store import NewEvents, _writes
from chargewire.store.tables import events


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


def _event_insert(batches: list[NewEvents], first_seq: int | None) -> dict[str, list[object]]:
    count = sum(len(batch) for batch in batches)
    [insert] = _writes(driver_value(sqlite.dialect(), events.c.received_at), batches, count, first_seq, [], None)
    return {column: list(values) for column, values in zip(insert.columns, insert.values, strict=True)}


def test_publishes_sharing_a_commit_are_numbered_in_order_each_with_its_own_time() -> None:
    first, second = utcnow(), utcnow() + timedelta(seconds=1)
    batches = [NewEvents.of(_events(2, first)), NewEvents.of(_events(3, second))]
    columns = _event_insert(batches, 41)
    assert columns["id"] == [*batches[0].ids, *batches[1].ids]
    assert columns["entity_id"] == ["0", "1", "0", "1", "2"]
    received = columns["received_at"]
    assert received[0] == received[1] != received[2] == received[3] == received[4]
    assert columns["seq"] == [41, 42, 43, 44, 45]
    assert len(columns["name"]) == len(columns["payload"]) == 5


def test_test_sends_carry_no_number() -> None:
    assert _event_insert([NewEvents.of(_events(2, utcnow()))], None)["seq"] == [None, None]
