"""The load benchmark's pure parts: CPU time read from /proc/<pid>/stat, percentiles, the latency tag, and the
interpreter the results name."""

from __future__ import annotations

import os
import sys
import sysconfig
import time

from bench.common import CLOCK_TICKS_PER_S, WakeReference, cpu_ticks_from_stat, python_build, tree_cpu_s
from bench.paced import latency_tag, percentiles


def stat_line(comm: str, utime: int, stime: int, cutime: int, cstime: int) -> str:
    """A /proc/<pid>/stat line with these CPU fields (14 to 17) and plausible values elsewhere."""
    before = "S 1 100 100 0 -1 4194560 2000 0 0 0"  # fields 3 to 13
    after = "20 0 4 0 5000 300000000 20000"  # fields 18 to 24
    return f"4242 ({comm}) {before} {utime} {stime} {cutime} {cstime} {after}\n"


def test_cpu_ticks_sum_user_system_and_waited_children_time() -> None:
    assert cpu_ticks_from_stat(stat_line("chargewire", 120, 30, 7, 3)) == 160


def test_cpu_ticks_are_read_after_a_command_name_with_spaces_and_parentheses() -> None:
    assert cpu_ticks_from_stat(stat_line("postgres: bench (idle) x", 10, 20, 0, 5)) == 35


def test_cpu_ticks_parse_this_process_real_stat_line() -> None:
    with open(f"/proc/{os.getpid()}/stat") as stat:
        ticks = cpu_ticks_from_stat(stat.read())
    times = os.times()
    expected = (times.user + times.system + times.children_user + times.children_system) * CLOCK_TICKS_PER_S
    assert abs(ticks - expected) <= 2


def test_tree_cpu_counts_a_process_and_nothing_when_it_is_gone() -> None:
    assert tree_cpu_s([os.getpid()]) > 0
    assert tree_cpu_s([2**22 + 1]) == 0


def test_percentiles_take_the_nearest_rank_and_the_maximum() -> None:
    values = [float(value) for value in range(100, 0, -1)]
    assert percentiles(values) == {"p50": 51.0, "p90": 91.0, "p99": 100.0, "max": 100.0}


def test_percentiles_of_one_value_are_that_value() -> None:
    assert percentiles([3.14159]) == {"p50": 3.1, "p90": 3.1, "p99": 3.1, "max": 3.1}


def test_percentiles_of_no_values_are_empty() -> None:
    assert percentiles([]) == {}


def test_latency_tag_starts_with_the_prefix_the_receiver_looks_for() -> None:
    assert latency_tag(17) == "lat-17"


def test_results_name_the_running_interpreter_and_whether_it_runs_from_libpython() -> None:
    build = python_build()
    assert build["executable"] == os.path.realpath(sys.executable)
    library = sysconfig.get_config_var("INSTSONAME") or "libpython"
    with open("/proc/self/maps") as maps:
        assert build["libpython_shared"] == (library in maps.read())
    assert build["reference_ms"] > 0


def test_a_wake_reference_gives_the_cpu_of_both_sides_per_round_trip_once_its_block_ends() -> None:
    with WakeReference(pace_s=0.005) as wake:
        assert wake.us_per_round_trip() is None
        time.sleep(0.3)

    cost = wake.us_per_round_trip()
    # A round trip is two process wake-ups and two small writes: microseconds to a few hundred, never a millisecond.
    assert cost is not None
    assert 1 < cost < 1000
