"""Ids carry their prefix and sort by creation time."""

from __future__ import annotations

import os
import time

import pytest

from chargewire import ids
from chargewire.ids import has_prefix, new_id, new_ids


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


def _value_of(identifier: str) -> int:
    value = 0
    for char in identifier.partition("_")[2]:
        value = value * 32 + "0123456789ABCDEFGHJKMNPQRSTVWXYZ".index(char)
    return value


def test_a_batch_of_ids_counts_up_after_every_earlier_id() -> None:
    earlier = new_id("evt")
    batch = new_ids("evt", 1000)
    assert all(has_prefix(identifier, "evt") for identifier in batch)
    assert [_value_of(identifier) for identifier in batch] == list(
        range(_value_of(batch[0]), _value_of(batch[0]) + 1000)
    )
    assert earlier < batch[0]
    assert batch[-1] < new_id("evt")


def test_a_batch_that_carries_into_its_upper_characters_stays_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    # Random bits just below a carry into the twenty-first bit: the batch's upper characters change midway.
    monkeypatch.setattr(ids, "_drawn", (2**20 - 3).to_bytes(10))
    monkeypatch.setattr(ids, "_drawn_used", 0)
    monkeypatch.setattr(ids, "_last_value", 0)
    batch = new_ids("dlv", 10, now_ms=1)
    values = [_value_of(identifier) for identifier in batch]
    assert values == list(range(values[0], values[0] + 10))
    assert batch == sorted(batch)


def test_an_ids_making_time_is_read_back_from_it() -> None:
    assert ids.made_at_ms(ids.first_id_at("att", 1_733_400_000_123)) == 1_733_400_000_123
    before = int(time.time() * 1000)
    assert before <= ids.made_at_ms(new_id("dlv")) <= int(time.time() * 1000)


def test_a_forked_child_does_not_reuse_the_randomness_its_parent_drew(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ids, "_drawn", b"")
    new_id("evt")  # the parent draws afresh and holds what it has not used
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(writing, str(len(ids._drawn) - ids._drawn_used).encode())
        os._exit(0)
    os.close(writing)
    left_in_child = int(os.read(reading, 32))
    os.waitpid(child, 0)
    os.close(reading)
    assert ids._drawn_used < len(ids._drawn)
    assert left_in_child == 0
