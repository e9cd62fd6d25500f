"""Ids carry their prefix and sort by creation time."""

from __future__ import annotations

import time

from chargewire.ids import has_prefix, new_id


def test_ids_carry_their_prefix() -> None:
    identifier = new_id("evt")
    assert identifier.startswith("evt_")
    assert has_prefix(identifier, "evt")
    assert not has_prefix(identifier, "dlv")


def test_later_ids_sort_after_earlier_ones() -> None:
    earlier = new_id("evt")
    later = new_id("evt", now_ms=int(time.time() * 1000) + 1)
    assert earlier < later


def test_ids_are_unique() -> None:
    assert len({new_id("dlv", now_ms=1) for _ in range(10_000)}) == 10_000


def test_malformed_ids_are_not_accepted() -> None:
    assert not has_prefix("evt_short", "evt")
    assert not has_prefix("evt-01JD3Q9W8T2X6Z4C5V7B9N1M3K", "evt")


def test_ids_made_in_the_same_millisecond_keep_their_order() -> None:
    made = [new_id("dlv", now_ms=1_700_000_000_000) for _ in range(1000)]
    assert made == sorted(made)
