"""How often a SQLite commit watcher looks: quickly for a while after it woke its worker, slowly otherwise."""

from __future__ import annotations

from chargewire.store.dialects.sqlite_wakeups import LookPace

PACE = LookPace(quick_s=0.005, quiet_s=0.02, quick_for_s=1.0)


def test_a_watcher_that_never_woke_its_worker_looks_at_the_quiet_pace() -> None:
    assert PACE.wait_s(now=100.0, last_wake=None) == 0.02


def test_a_watcher_looks_at_the_quick_pace_within_a_second_of_a_wake() -> None:
    assert PACE.wait_s(now=100.9, last_wake=100.0) == 0.005


def test_a_watcher_goes_back_to_the_quiet_pace_a_second_after_its_last_wake() -> None:
    assert PACE.wait_s(now=101.0, last_wake=100.0) == 0.02
