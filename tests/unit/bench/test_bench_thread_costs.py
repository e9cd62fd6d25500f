"""Reading per-thread times from /proc, thread names from py-spy and system call counts from perf."""

from __future__ import annotations

import os

from bench.thread_costs import parse_perf, parse_thread, parse_thread_names

TICKS = os.sysconf("SC_CLK_TCK")


def test_a_threads_cpu_is_its_user_and_system_ticks_and_its_switches_come_from_status() -> None:
    stat = f"4416 (chargewire (x)) S 1 2 3 4 5 6 7 8 9 10 {3 * TICKS} {TICKS} 0 0 20 0 12 0"
    status = "Name:\tchargewire\nvoluntary_ctxt_switches:\t906\nnonvoluntary_ctxt_switches:\t12\n"

    times = parse_thread(stat, status)

    assert (times.cpu_s, times.voluntary, times.involuntary) == (4.0, 906, 12)


def test_thread_names_are_read_from_a_py_spy_dump_in_hex_or_decimal() -> None:
    dump = 'Thread 4416 (idle): "MainThread"\n  run (x.py)\nThread 0x7f00 (active): "commit-watcher:bench.db"\n'

    assert parse_thread_names(dump) == {4416: "MainThread", 0x7F00: "commit-watcher:bench.db"}


def test_perf_counts_are_read_per_thread_and_system_call() -> None:
    lines = [
        "      chargewire-21327             12,461      syscalls:sys_enter_epoll_pwait\n",
        "    libuv-worker-21351      <not counted>      syscalls:sys_enter_write\n",
        "      chargewire-21345                528      syscalls:sys_enter_write\n",
    ]

    assert parse_perf(lines) == {(21327, "epoll_pwait"): 12461, (21345, "write"): 528}
