"""What makes the tail of a `serve` under load: a probe installed in chargewire's processes by `bench.load --probe`.

The latency of a publish at 2,000 events/s is made of waits that a CPU profile does not show: a turn of a busy
event loop, a garbage collection, a turn of SQLite's one writer (`SerialWriter`) behind a record flush or a claim,
a group commit, a subscription's full in-memory buffer that sends a publish's deliveries to a claim instead of
straight to the worker. The probe times each in the process and appends what it saw, with CLOCK_MONOTONIC times
(the bench's own clock), to `<folder>/<pid>.jsonl` once a second; `summarise` reads one measure's window back.

It wraps functions of chargewire's modules by name (`_HOOKS`); one that is gone or renamed is skipped and named in
the file's first line, so the probe keeps working, with less to say, while those modules change.
Only `bench/probe/sitecustomize.py` imports it, in processes started with `CHARGEWIRE_BENCH_PROBE=<folder>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import importlib
import json
import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextvars import ContextVar
from functools import partial
from pathlib import Path
from typing import Any

PROBE_FOLDER_ENV = "CHARGEWIRE_BENCH_PROBE"
# To try another GIL switch interval (`sys.setswitchinterval`, 5 ms by default) in the probed processes.
SWITCH_INTERVAL_ENV = "CHARGEWIRE_BENCH_SWITCH_INTERVAL_S"
# To run the trips of SQLite's writer turns on the event loop's thread instead of the driver's (an experiment: what a
# turn holds the writer for without the two thread hand-offs of each trip).
INLINE_WRITER_TRIPS_ENV = "CHARGEWIRE_BENCH_INLINE_WRITER_TRIPS"
# How often the loop-lag task looks: a callback due now waits this long at most for its sample to start.
LAG_SAMPLE_S = 0.005
_DUMP_EVERY_S = 1.0
# The kind of SQLite writer's turn (`writer_publish`, `writer_other`) a task holds, set by `_timed_context`.
_writer_turn: ContextVar[str | None] = ContextVar("bench_probe_writer_turn", default=None)


class Probe:
    """Records, each a list with its time first, kept until the next dump writes them out."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.counts: Counter[str] = Counter()
        self._records: list[list[Any]] = []
        self._lock = threading.Lock()
        self._gc_started = 0.0

    def record(self, kind: str, *values: float) -> None:
        """Keep one observation of `kind` (its values in milliseconds or counts) at the current time."""
        self._records.append([kind, time.monotonic(), *values])

    def count(self, name: str, amount: int = 1) -> None:
        """Add to a running count (hand-offs, claims), written with every dump."""
        self.counts[name] += amount

    def dump(self) -> None:
        """Append what was recorded since the last dump, the counts so far and each thread's CPU so far, to the
        file."""
        with self._lock:
            records, self._records = self._records, []
            lines = [json.dumps(record) for record in records]
            now = time.monotonic()
            # Running totals carry the process: a worker row's two processes each write their own.
            lines.append(json.dumps(["counts", now, dict(self.counts), os.getpid()]))
            lines.append(json.dumps(["threads", now, thread_cpu_s(), os.getpid()]))
            with self.path.open("a") as file:
                file.write("\n".join(lines) + "\n")

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        """A `gc.callbacks` entry: time every collection, by generation."""
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.record("gc", info["generation"], (time.perf_counter() - self._gc_started) * 1000)

    async def sample_lag(self) -> None:
        """Every `LAG_SAMPLE_S`, how much later than asked the event loop came back: its turns, as felt."""
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(LAG_SAMPLE_S)
            self.record("lag", (time.perf_counter() - asked - LAG_SAMPLE_S) * 1000)


def thread_cpu_s() -> dict[str, float]:
    """CPU seconds (user + system) each kind of this process's threads has used so far, by thread name with its
    digits replaced ("Thread-N" for aiosqlite's driver threads); "process" is the whole process's, threads that
    ended included, so what no live thread accounts for is its difference."""
    ticks = os.sysconf("SC_CLK_TCK")
    used: Counter[str] = Counter()
    for thread in threading.enumerate():
        with contextlib.suppress(OSError, TypeError):
            used[re.sub(r"\d+", "N", thread.name)] += _stat_cpu_s(f"/proc/self/task/{thread.native_id}/stat", ticks)
    used["process"] = _stat_cpu_s("/proc/self/stat", ticks)
    return dict(used)


def _stat_cpu_s(path: str, ticks: int) -> float:
    # utime and stime are the 14th and 15th fields; the command name before them may hold spaces, not ")".
    fields = Path(path).read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / ticks


def _counted_calls(probe: Probe, original: Callable[..., Any], kind: str) -> Callable[..., Any]:
    """A function like `original` (called in any thread), counting its calls as `kind`."""

    @functools.wraps(original)
    def counted(*args: Any, **kwargs: Any) -> Any:
        probe.count(kind)
        return original(*args, **kwargs)

    return counted


def _timed_context(probe: Probe, original: Callable[..., Any], kind: str) -> Callable[..., Any]:
    """An async context manager like `original`, recording how long entering it waited and how long it was held."""

    @contextlib.asynccontextmanager
    async def timed(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        asked = time.perf_counter()
        async with original(*args, **kwargs) as value:
            entered = time.perf_counter()
            in_turn = _writer_turn.set(kind)
            try:
                yield value
            finally:
                _writer_turn.reset(in_turn)
                probe.record(kind, (entered - asked) * 1000, (time.perf_counter() - entered) * 1000)

    return timed


def _timed_call(probe: Probe, original: Callable[..., Any], kind: str, size: Callable[..., int]) -> Callable[..., Any]:
    """A coroutine function like `original`, recording its wall time and the size of what it was given."""

    @functools.wraps(original)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            probe.record(kind, (time.perf_counter() - started) * 1000, size(*args, **kwargs))

    return timed


def _counted_reserve(probe: Probe, original: Callable[..., Any]) -> Callable[..., Any]:
    """`Dispatcher.reserve`, counting the deliveries a publish offered its worker and those it took."""

    @functools.wraps(original)
    def reserve(self: Any, deliveries: Any) -> Any:
        lease = original(self, deliveries)
        probe.count("handoff_offered", len(deliveries))
        probe.count("handoff_taken", len(lease.delivery_ids) if lease is not None else 0)
        return lease

    return reserve


def _counted_claim(probe: Probe, original: Callable[..., Any], prefix: str = "") -> Callable[..., Any]:
    """A claim of `DeliveryStore` (`claim_due_deliveries`, `claim_announced`), counting claims and the deliveries
    they took, as `<prefix>claims` and `<prefix>claimed`."""

    @functools.wraps(original)
    async def claim(*args: Any, **kwargs: Any) -> Any:
        claimed = await original(*args, **kwargs)
        probe.count(f"{prefix}claims")
        probe.count(f"{prefix}claimed", len(claimed))
        return claimed

    return claim


def _counted_assigned(probe: Probe, original: Callable[..., Any]) -> Callable[..., Any]:
    """`Dispatcher.assigned`, counting the deliveries publishes of another process assigned to this worker."""

    @functools.wraps(original)
    def assigned(self: Any, lease: Any, deliveries: Any) -> Any:
        probe.count("assigned", len(deliveries))
        return original(self, lease, deliveries)

    return assigned


def _counted_hand_backs(probe: Probe, original: Callable[..., Any]) -> Callable[..., Any]:
    """`DeliveryStore.release_leases`, counting its writes and the deliveries they gave back unattempted (each to be
    claimed again)."""

    @functools.wraps(original)
    async def release_leases(self: Any, worker_id: str, delivery_ids: Any, now: Any) -> Any:
        probe.count("hand_backs")
        probe.count("handed_back", len(delivery_ids))
        return await original(self, worker_id, delivery_ids, now)

    return release_leases


def _timed_trip(probe: Probe, original: Callable[..., Any]) -> Callable[..., Any]:
    """`OneTripConnection.run` (one trip to SQLite's driver thread), recording its three parts: until the thread
    starts the work, the work (SQLite's, and the GIL the thread waits for between its calls), and until the event
    loop resumes the awaiting task; those in a publish's turn apart from the rest (other turns', and reads). With
    `INLINE_WRITER_TRIPS_ENV` set, a trip in a writer's turn runs on the calling thread, timed whole."""
    inline = bool(os.environ.get(INLINE_WRITER_TRIPS_ENV))

    @functools.wraps(original)
    async def run(self: Any, function: Callable[..., Any], *args: Any) -> Any:
        marks = [time.perf_counter(), 0.0, 0.0]
        turn = _writer_turn.get()
        if inline and turn is not None:
            # The writer's connection is used by one turn at a time, so no trip of the driver's thread overlaps.
            marks[1] = time.perf_counter()
            try:
                return function(self.sqlite_connection, *args)
            finally:
                marks[2] = time.perf_counter()
                probe.record("trip_inline", (marks[2] - marks[1]) * 1000)

        def in_thread(*thread_args: Any) -> Any:
            marks[1] = time.perf_counter()
            try:
                return function(*thread_args)
            finally:
                marks[2] = time.perf_counter()

        try:
            return await original(self, in_thread, *args)
        finally:
            if marks[2]:
                kind = "trip_publish" if turn == "writer_publish" else "trip_other"
                called, started, ended = marks
                probe.record(
                    kind, (started - called) * 1000, (ended - started) * 1000, (time.perf_counter() - ended) * 1000
                )

    return run


# A checkpoint's mode as the probe records it (an unknown mode counts as PASSIVE).
_CHECKPOINT_MODES = {"PASSIVE": 0.0, "TRUNCATE": 1.0, "RESTART": 2.0}


def _timed_checkpoint(probe: Probe, original: Callable[..., Any]) -> Callable[..., Any]:
    """`WalCheckpointer._checkpoint` (in its own thread), recording its time and its mode (`_CHECKPOINT_MODES`)."""

    @functools.wraps(original)
    def checkpoint(self: Any, connection: Any, mode: str, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, connection, mode, *args)
        finally:
            probe.record("checkpoint", (time.perf_counter() - started) * 1000, _CHECKPOINT_MODES.get(mode, 0.0))

    return checkpoint


def _timed_lock_wait(probe: Probe, original: Callable[..., Any]) -> Callable[..., Any]:
    """`sqlite_engine._begin_write` (in the driver's thread): how long a writer's BEGIN IMMEDIATE waited for another
    connection's write lock (a RESTART or TRUNCATE checkpoint, another process)."""

    @functools.wraps(original)
    def begin_write(*args: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args)
        finally:
            probe.record("lock_wait", (time.perf_counter() - started) * 1000)

    return begin_write


def _counted_busy_begins(probe: Probe, original: Callable[..., Any]) -> Callable[..., Any]:
    """`sqlite_engine._begin_write_at_once`, counting the writes it sent to the driver's thread because another
    connection held the write lock."""

    @functools.wraps(original)
    def begin_write_at_once(*args: Any) -> Any:
        began = original(*args)
        if not began:
            probe.count("lock_busy_begins")
        return began

    return begin_write_at_once


def _second(*args: Any, **_kwargs: Any) -> int:
    return len(args[1])


def _third(*args: Any, **_kwargs: Any) -> int:
    return len(args[2])


Wrap = Callable[[Probe, Callable[..., Any]], Callable[..., Any]]

# module, class (empty: a module's function), attribute -> what wraps it
_HOOKS: dict[tuple[str, str, str], Wrap] = {
    ("chargewire.store.dialects.sqlite_writer", "SerialWriter", "driver_transaction"): partial(
        _timed_context, kind="writer_publish"
    ),
    ("chargewire.store.dialects.sqlite_writer", "SerialWriter", "transaction"): partial(
        _timed_context, kind="writer_other"
    ),
    ("chargewire.services.group_commit", "GroupCommitter", "_insert"): partial(_timed_call, kind="group", size=_second),
    ("chargewire.store.delivery_store", "DeliveryStore", "record_attempts"): partial(
        _timed_call, kind="flush", size=_second
    ),
    ("chargewire.store.dialects.sqlite", "SQLiteDialect", "write_last"): partial(
        _timed_call, kind="write_last", size=_third
    ),
    ("chargewire.dispatch.attempt_stage", "AttemptStage", "attempt"): partial(
        _timed_call, kind="attempt", size=_second
    ),
    ("chargewire.store.dialects.sqlite_engine", "OneTripConnection", "run"): _timed_trip,
    ("chargewire.store.dialects.sqlite_checkpoint", "WalCheckpointer", "_checkpoint"): _timed_checkpoint,
    ("chargewire.store.dialects.sqlite_engine", "", "_begin_write"): _timed_lock_wait,
    ("chargewire.store.dialects.sqlite_engine", "", "_begin_write_at_once"): _counted_busy_begins,
    ("chargewire.dispatch.dispatcher", "Dispatcher", "reserve"): _counted_reserve,
    ("chargewire.store.delivery_store", "DeliveryStore", "claim_due_deliveries"): _counted_claim,
    ("chargewire.store.delivery_store", "DeliveryStore", "claim_announced"): partial(
        _counted_claim, prefix="announced_"
    ),
    ("chargewire.dispatch.dispatcher", "Dispatcher", "assigned"): _counted_assigned,
    ("chargewire.store.delivery_store", "DeliveryStore", "release_leases"): _counted_hand_backs,
    # Token reads (a request that missed the cache): calls, as the coroutine is made.
    ("chargewire.store.token_store", "TokenStore", "find_active_by_hash"): partial(_counted_calls, kind="token_reads"),
    # The commit watcher's looks (one `PRAGMA data_version` each) and its reads of whether work is due.
    ("chargewire.store.dialects.sqlite_wakeups", "", "_data_version"): partial(_counted_calls, kind="watcher_looks"),
    ("chargewire.store.dialects.sqlite_wakeups", "CommitWatcher", "_due_now"): partial(
        _counted_calls, kind="watcher_due_reads"
    ),
}


def install_hooks(probe: Probe) -> list[str]:
    """Wrap every function of `_HOOKS` that exists; the names of those that do not."""
    missing = []
    for (module_name, class_name, attribute), wrap in _HOOKS.items():
        try:
            module = importlib.import_module(module_name)
            owner = getattr(module, class_name) if class_name else module
            original = getattr(owner, attribute)
        except (ImportError, AttributeError):
            missing.append(f"{module_name}.{class_name}.{attribute}")
            continue
        setattr(owner, attribute, wrap(probe, original))
    return missing


# The lag task, kept referenced: the loop holds only a weak reference to a task.
_keep: set[asyncio.Task[None]] = set()


def start_lag_sampling(probe: Probe) -> None:
    """Sample the loop's lag on the running loop (called once the process serves)."""
    task = asyncio.get_running_loop().create_task(probe.sample_lag(), name="bench-probe-lag")
    _keep.add(task)


def install(folder: Path) -> Probe:
    """Probe this process: GC pauses, the hooks, a dump thread; the loop-lag task starts with the process's loop
    (chargewire's `freeze_startup_objects`, called once everything is started, starts it)."""
    probe = Probe(folder / f"{os.getpid()}.jsonl")
    if os.environ.get(SWITCH_INTERVAL_ENV):
        sys.setswitchinterval(float(os.environ[SWITCH_INTERVAL_ENV]))
    missing = install_hooks(probe)
    probe.path.write_text(json.dumps(["missing", time.monotonic(), missing]) + "\n")
    gc.callbacks.append(probe.on_gc)
    common = importlib.import_module("chargewire.cli.common")
    freeze = common.freeze_startup_objects

    def freeze_and_sample() -> None:
        freeze()
        start_lag_sampling(probe)

    setattr(common, "freeze_startup_objects", freeze_and_sample)  # noqa: B010 (a module, not a typed object)

    def dump_forever() -> None:
        while True:
            time.sleep(_DUMP_EVERY_S)
            probe.dump()

    threading.Thread(target=dump_forever, name="bench-probe-dump", daemon=True).start()
    return probe


def read_records(folder: Path) -> Iterator[list[Any]]:
    """Every record of every probed process in `folder`."""
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                yield json.loads(line)


def _spread(values: Iterable[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 2)

    return {"n": len(ordered), "p50": at(0.5), "p99": at(0.99), "max": round(ordered[-1], 2)}


def summarise(records: Iterable[list[Any]], start: float, end: float) -> dict[str, Any]:
    """What the probed processes saw between `start` and `end` (CLOCK_MONOTONIC s): loop lag and how often it
    passed 10 and 50 ms, GC pauses by generation, SQLite's writer (wait for and hold of a turn, and the share of the
    window it was held) for publishes and for the rest (record flushes, claims), group commits, record flushes,
    SQLite's trip that writes and commits a record flush (`write_last`), the parts of every trip to SQLite's driver
    thread (publishes' apart), WAL checkpoints (PASSIVE, TRUNCATE and RESTART apart), a writer's BEGIN in the driver's
    thread (`lock_wait_ms`: another connection held the lock), attempts, and the hand-off and claim counts."""
    by_kind: dict[str, list[list[Any]]] = {}
    # Running totals (counts, threads' CPU) per process: the last dump before the window and the last
    # one within a dump's interval after it.
    first: dict[tuple[str, int], dict[str, float]] = {}
    last: dict[tuple[str, int], dict[str, float]] = {}
    for kind, at, *values in records:
        if kind in ("counts", "threads"):
            key = (kind, values[1] if len(values) > 1 else 0)
            if at <= start:
                first[key] = values[0]
            elif at <= end + _DUMP_EVERY_S:
                last[key] = values[0]
        elif start <= at <= end:
            by_kind.setdefault(kind, []).append(values)
    seconds = max(end - start, 1e-9)
    lags = [values[0] for values in by_kind.get("lag", [])]
    summary: dict[str, Any] = {
        "loop_lag_ms": _spread(lags)
        | {"over_10": sum(lag > 10 for lag in lags), "over_50": sum(lag > 50 for lag in lags)}
    }
    for generation in (0, 1, 2):
        pauses = [values[1] for values in by_kind.get("gc", []) if values[0] == generation]
        summary[f"gc{generation}_ms"] = _spread(pauses) | {"total": round(sum(pauses), 1)}
    for kind in ("writer_publish", "writer_other"):
        turns = by_kind.get(kind, [])
        summary[kind] = {
            "wait_ms": _spread(turn[0] for turn in turns),
            "hold_ms": _spread(turn[1] for turn in turns),
            "held_share": round(sum(turn[1] for turn in turns) / 1000 / seconds, 2),
        }
    for kind in ("group", "flush", "write_last", "attempt"):
        calls = by_kind.get(kind, [])
        summary[kind] = {"ms": _spread(call[0] for call in calls), "size": _spread(call[1] for call in calls)}
    for kind in ("trip_publish", "trip_other"):
        trips = by_kind.get(kind, [])
        summary[kind] = {
            part: _spread(trip[index] for trip in trips)
            for index, part in enumerate(("to_thread_ms", "work_ms", "back_ms"))
        }
    summary["trip_inline_ms"] = _spread(trip[0] for trip in by_kind.get("trip_inline", []))
    waits = [wait[0] for wait in by_kind.get("lock_wait", [])]
    summary["lock_wait_ms"] = _spread(waits) | {"total": round(sum(waits), 1)}
    checkpoints = by_kind.get("checkpoint", [])
    for mode, code in _CHECKPOINT_MODES.items():
        times = [checkpoint[0] for checkpoint in checkpoints if checkpoint[1] == code]
        name = f"checkpoint_{mode.lower()}_ms"
        summary[name] = _spread(times) | {"total": round(sum(times), 1)}
    summary["counts"] = _rise(first, last, "counts", 1)
    # CPU ms per second of the window, by kind of thread (all processes' together).
    summary["thread_cpu_ms_per_s"] = _rise(first, last, "threads", 1000 / seconds)
    return summary


def _rise(
    first: dict[tuple[str, int], dict[str, float]],
    last: dict[tuple[str, int], dict[str, float]],
    kind: str,
    scale: float,
) -> dict[str, float]:
    """How much each running total of `kind` rose over the window, summed over the processes, times `scale`."""
    rose: Counter[str] = Counter()
    for (total_kind, process), after in last.items():
        if total_kind != kind:
            continue
        before = first.get((kind, process), {})
        for name, value in after.items():
            rose[name] += value - before.get(name, 0)
    return {name: round(value * scale, 1) for name, value in sorted(rose.items())}
