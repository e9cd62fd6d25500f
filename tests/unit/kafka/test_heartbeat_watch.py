"""Which stream holders a worker takes for dead: those whose stored heartbeat stood still for the stale time while
its own moved on, read without comparing clocks."""

from __future__ import annotations

from chargewire.kafka.orphaned_leases import HeartbeatWatch
from tests.support.manual_clock import ManualClock

STALE_S = 10.0


def _watch() -> tuple[HeartbeatWatch, ManualClock]:
    clock = ManualClock(0.0)
    return HeartbeatWatch(STALE_S, clock), clock


def _looks(watch: HeartbeatWatch, clock: ManualClock, holders: dict[str, object], seconds: int) -> set[str]:
    """One look every 2 s for `seconds`, this worker's heartbeat moving at each; what the last one took for dead."""
    dead: set[str] = set()
    for step in range(seconds // 2 + 1):
        clock.now = step * 2.0
        dead = watch.dead(own=f"own beat {step}", holders=holders)
    return dead


def test_a_holder_whose_heartbeat_stood_still_while_ours_moved_is_dead_after_the_stale_time() -> None:
    watch, clock = _watch()

    assert _looks(watch, clock, {"wrk_dead": "its last beat"}, seconds=8) == set()
    clock.now = 10.0
    assert watch.dead(own="own beat again", holders={"wrk_dead": "its last beat"}) == {"wrk_dead"}


def test_a_holder_whose_heartbeat_moves_is_never_dead() -> None:
    watch, clock = _watch()
    for step in range(20):
        clock.now = step * 2.0
        assert watch.dead(own=f"own {step}", holders={"wrk_alive": f"its beat {step // 3}"}) == set()


def test_no_holder_is_dead_while_our_own_heartbeat_stands_still_too() -> None:
    watch, clock = _watch()
    for step in range(20):  # the database takes no writes: nobody's heartbeat moves
        clock.now = step * 2.0
        assert watch.dead(own="own beat", holders={"wrk_other": "its beat"}) == set()


def test_a_holder_that_beats_again_starts_its_stale_time_over() -> None:
    watch, clock = _watch()
    _looks(watch, clock, {"wrk_slow": "beat 1"}, seconds=8)

    clock.now = 10.0
    assert watch.dead(own="own beat 10", holders={"wrk_slow": "beat 2"}) == set()
    clock.now = 18.0
    assert watch.dead(own="own beat 18", holders={"wrk_slow": "beat 2"}) == set()
    clock.now = 20.0
    assert watch.dead(own="own beat 20", holders={"wrk_slow": "beat 2"}) == {"wrk_slow"}


def test_a_worker_without_a_heartbeat_of_its_own_takes_no_holder_for_dead() -> None:
    watch, clock = _watch()
    for step in range(20):
        clock.now = step * 2.0
        assert watch.dead(own=None, holders={"wrk_other": "its beat"}) == set()
