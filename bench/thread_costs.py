"""Where chargewire spends its CPU at low rates, per process and thread: CPU ms and switches per event, and idle.

`bench.load` gives the CPU of chargewire's processes as a whole; this splits each chargewire process's CPU by
thread (`--mode serve`: one `serve`; `--mode worker`: `serve --no-worker` and one `worker`, each on its own)
(`/proc/<pid>/task/<tid>/stat` and `status`, each thread named from `py-spy dump`): the event loop,
aiosqlite's driver threads, the SQLite commit watcher and WAL checkpointer. With `--syscalls`, `perf stat`
counts chosen system calls per thread while each rate is offered, as counts per event: `epoll_pwait` on the
main thread is the event loop's wake-ups, `write` from other threads their wakes of the loop, `mmap` on the main
thread the new frame-stack chunks (CPython 3.11 maps one per SQLAlchemy greenlet), `pwrite64` SQLite's WAL
writes. Figures are printed only: the machine is shared, so compare commits back to back.
Usage: python -m bench.thread_costs [--backend sqlite] [--mode serve] [--rates 50,200] [--seconds 10] [--idle-s 20]
       [--syscalls]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.load import PY_SPY, Sequence, Stack, _warm_up, measure, running_stack
from bench.load_peers import running_signing_receiver
from bench.processes import open_backend

SYSCALLS = ("epoll_pwait", "write", "read", "futex", "mmap", "pwrite64", "fcntl", "newfstatat", "getdents64", "openat")
_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_THREAD_NAME = re.compile(r'Thread (0x[0-9a-fA-F]+|\d+) \(\w+\): "([^"]*)"')
_PERF_LINE = re.compile(r"^\s*(\S+)-(\d+)\s+([\d,]+)\s+syscalls:sys_enter_(\w+)")


@dataclass(frozen=True)
class ThreadTimes:
    """One thread's CPU seconds and context switches so far."""

    cpu_s: float
    voluntary: int
    involuntary: int


def parse_thread(stat: str, status: str) -> ThreadTimes:
    """A thread's times from its /proc `stat` line (utime and stime) and `status` text (context switches)."""
    fields = stat.rsplit(")", 1)[1].split()
    switches = dict(re.findall(r"^(\w*ctxt_switches):\s+(\d+)$", status, re.MULTILINE))
    return ThreadTimes(
        (int(fields[11]) + int(fields[12])) / _TICKS_PER_S,
        int(switches["voluntary_ctxt_switches"]),
        int(switches["nonvoluntary_ctxt_switches"]),
    )


def thread_times(pid: int) -> dict[int, ThreadTimes]:
    """Every live thread of `pid` and its times."""
    times = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        times[int(tid)] = parse_thread(stat, status)
    return times


def parse_thread_names(dump: str) -> dict[int, str]:
    """Thread id -> Python thread name, from `py-spy dump` output."""
    return {int(ident, 0): name for ident, name in _THREAD_NAME.findall(dump)}


def thread_names(pid: int) -> dict[int, str]:
    """The Python names of `pid`'s threads (those py-spy sees)."""
    dump = subprocess.run([str(PY_SPY), "dump", "--nonblocking", "--pid", str(pid)], capture_output=True, text=True)
    return parse_thread_names(dump.stdout)


def parse_perf(lines: Iterable[str]) -> dict[tuple[int, str], int]:
    """(thread id, system call) -> calls, from `perf stat --per-thread` output."""
    counts = {}
    for line in lines:
        match = _PERF_LINE.match(line)
        if match:
            counts[int(match[2]), match[4]] = int(match[3].replace(",", ""))
    return counts


@contextmanager
def counted_syscalls(pids: list[int], seconds: float, enabled: bool) -> Iterator[dict[tuple[int, str], int]]:
    """Count SYSCALLS per thread of `pids` for `seconds` with perf; the dict is filled when the block ends."""
    counts: dict[tuple[int, str], int] = {}
    if not enabled:
        yield counts
        return
    with tempfile.NamedTemporaryFile("r", suffix=".perf") as output:
        events = ",".join(f"syscalls:sys_enter_{name}" for name in SYSCALLS)
        command = ["perf", "stat", "--per-thread", "-e", events, "-p", ",".join(map(str, pids)), "-o", output.name]
        perf = subprocess.Popen([*command, "--", "sleep", str(seconds)])
        try:
            yield counts
        finally:
            perf.wait()
            counts.update(parse_perf(output))


def print_costs(
    label: str,
    before: dict[int, ThreadTimes],
    after: dict[int, ThreadTimes],
    names: dict[int, str],
    events: int,
    seconds: float,
    syscalls: dict[tuple[int, str], int],
) -> None:
    """Per thread, busiest first: CPU per event and cores, context switches per event, system calls per event."""
    per = max(events, 1)
    total_s = sum(times.cpu_s - before.get(tid, ThreadTimes(0, 0, 0)).cpu_s for tid, times in after.items())
    print(f"{label}: {total_s * 1000 / per:.3f} ms CPU per event, {total_s / seconds:.3f} cores")
    rows = []
    for tid, times in after.items():
        start = before.get(tid, ThreadTimes(0, 0, 0))
        rows.append((times.cpu_s - start.cpu_s, tid, times.voluntary - start.voluntary))
    for cpu_s, tid, voluntary in sorted(rows, reverse=True):
        calls = ", ".join(f"{name} {syscalls[tid, name] / per:.1f}" for name in SYSCALLS if syscalls.get((tid, name)))
        if cpu_s or voluntary or calls:
            name = names.get(tid, f"thread {tid}")
            print(
                f"  {name:40} {cpu_s * 1000 / per:7.3f} ms/event {cpu_s / seconds:6.3f} cores"
                f"  {voluntary / per:6.2f} switches/event  {calls}"
            )
    sys.stdout.flush()


def measure_threads(stack: Stack, options: argparse.Namespace) -> None:
    """Idle for `--idle-s`, then each rate, one event per request, printed per process and thread."""
    pids = stack.groups["chargewire"]
    sequence = Sequence()
    _warm_up(stack, sequence)
    names = {pid: thread_names(pid) for pid in pids}
    if options.idle_s:
        before = {pid: thread_times(pid) for pid in pids}
        with counted_syscalls(pids, options.idle_s, options.syscalls) as calls:
            time.sleep(options.idle_s)
        seconds = options.idle_s
        for pid in pids:
            label = f"pid {pid}, idle, per second (not per event)"
            print_costs(label, before[pid], thread_times(pid), names[pid], round(seconds), seconds, calls)
    for rate in options.rates:
        before, started = {pid: thread_times(pid) for pid in pids}, time.monotonic()
        with counted_syscalls(pids, options.seconds, options.syscalls) as calls:
            result = measure(stack, rate, options.seconds, 1, sequence)
        elapsed = time.monotonic() - started
        label = f"{rate}/s (load {result['load_average_before']}, p50/p99 {result['latency_ms']['p50']}/"
        label += f"{result['latency_ms']['p99']} ms)"
        events = int(result["events"])
        for pid in pids:
            names[pid] |= thread_names(pid)  # the pool may have opened connections (threads) meanwhile
            print_costs(f"pid {pid}, {label}", before[pid], thread_times(pid), names[pid], events, elapsed, calls)


def main() -> None:
    """Run the mode's processes on the backend and print their per-thread costs idle and at each rate."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="sqlite", choices=("sqlite", "postgresql"))
    parser.add_argument("--mode", default="serve", choices=("serve", "worker"), help="`serve`, or API and worker")
    parser.add_argument("--rates", default="50,200", help="events/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=10, help="how long each rate is offered")
    parser.add_argument("--idle-s", type=float, default=20, help="how long to measure idle first (0: not at all)")
    parser.add_argument("--syscalls", action="store_true", help="count system calls per thread with perf")
    options = parser.parse_args()
    options.rates = [int(rate) for rate in options.rates.split(",")]
    with (
        open_backend(options.backend) as backend,
        running_signing_receiver() as receiver,
        running_stack(backend, receiver, options.mode) as stack,
    ):
        measure_threads(stack, options)


if __name__ == "__main__":
    main()
