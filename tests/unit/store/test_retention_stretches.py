"""Which event numbers a Kafka stream has still to read: past its position, less the stretches it was paused."""

from __future__ import annotations

from chargewire.store.expiry_rules import needed_stretches


def test_a_stream_without_pauses_needs_everything_past_its_position() -> None:
    assert needed_stretches(10, []) == [(10, None)]


def test_an_open_pause_ends_what_a_stream_needs_where_it_began() -> None:
    assert needed_stretches(10, [(15, None)]) == [(10, 15)]


def test_an_open_pause_the_stream_is_already_past_leaves_it_needing_nothing() -> None:
    assert needed_stretches(10, [(8, None)]) == []


def test_closed_pauses_are_cut_out_and_those_behind_the_position_ignored() -> None:
    assert needed_stretches(10, [(30, 40), (2, 5), (12, 20)]) == [(10, 12), (20, 30), (40, None)]


def test_a_pause_that_began_before_the_position_moves_the_need_to_its_end() -> None:
    assert needed_stretches(10, [(5, 25)]) == [(25, None)]
