"""The id lower bound that lets the back office find recent attempts by primary key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chargewire.clock import utcnow
from chargewire.ids import new_id
from chargewire.store.delivery_stats import first_id_at


def test_the_first_id_of_a_moment_sorts_before_every_id_made_from_then_on() -> None:
    moment = utcnow()
    floor = first_id_at("att", moment)
    assert floor <= new_id("att")
    assert floor.startswith("att_")
    assert len(floor) == len(new_id("att"))


def test_ids_of_an_earlier_millisecond_sort_before_the_first_id_of_a_later_one() -> None:
    moment = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    earlier = first_id_at("att", moment - timedelta(milliseconds=1)).replace("0" * 16, "Z" * 16)
    assert earlier < first_id_at("att", moment)
    assert first_id_at("att", moment) < first_id_at("att", moment + timedelta(milliseconds=1))
