"""The load benchmark's probe of the tail: what it records inside a process, and how a measure's window reads back."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import load_probe
from bench.load import LATE_MS, lateness
from bench.load_probe import Probe, install_hooks, read_records, summarise


@pytest.fixture
def probe(tmp_path: Path) -> Iterator[Probe]:
    """A probe writing to a temporary file, its GC callback removed afterwards."""
    made = Probe(tmp_path / "4242.jsonl")
    yield made
    if made.on_gc in gc.callbacks:
        gc.callbacks.remove(made.on_gc)


def test_summary_counts_loop_stalls_past_10_and_50_ms_inside_the_window_only() -> None:
    records: list[list[Any]] = [["lag", 0.5, 80.0], ["lag", 1.0, 0.2], ["lag", 1.1, 12.0], ["lag", 1.2, 60.0]]
    records.append(["lag", 3.5, 90.0])

    lag = summarise(records, 1.0, 3.0)["loop_lag_ms"]

    assert (lag["n"], lag["over_10"], lag["over_50"], lag["max"]) == (3, 2, 1, 60.0)


def test_summary_counts_hand_offs_and_claims_made_during_the_window() -> None:
    before = {"handoff_offered": 100, "handoff_taken": 100}
    after = {"handoff_offered": 300, "handoff_taken": 250, "claims": 4, "claimed": 50}
    records: list[list[Any]] = [["counts", 0.9, before], ["counts", 3.4, after], ["counts", 9.0, {"claims": 99}]]

    assert summarise(records, 1.0, 3.0)["counts"] == {
        "handoff_offered": 200,
        "handoff_taken": 150,
        "claims": 4,
        "claimed": 50,
    }


def test_summary_gives_the_share_of_the_window_sqlite_writer_was_held() -> None:
    turns: list[list[Any]] = [["writer_other", 1.5, 2.0, 1000.0], ["writer_other", 2.5, 0.0, 500.0]]

    writer = summarise(turns, 1.0, 3.0)["writer_other"]

    assert writer["held_share"] == 0.75
    assert writer["wait_ms"]["max"] == 2.0


def test_summary_splits_trips_to_sqlites_thread_into_their_parts_publishes_apart() -> None:
    trips: list[list[Any]] = [["trip_publish", 1.5, 0.1, 2.0, 3.0], ["trip_other", 1.6, 0.2, 9.0, 0.5]]

    summary = summarise(trips, 1.0, 3.0)

    assert summary["trip_publish"]["back_ms"]["p50"] == 3.0
    assert summary["trip_other"]["work_ms"]["p50"] == 9.0


def test_summary_totals_passive_truncating_and_restarting_checkpoints_apart_and_the_writers_lock_waits() -> None:
    checkpoints: list[list[Any]] = [
        ["checkpoint", 1.2, 4.0, 0.0],
        ["checkpoint", 1.4, 6.0, 0.0],
        ["checkpoint", 2, 30.0, 1.0],
        ["checkpoint", 2.5, 3.0, 2.0],
        ["lock_wait", 2.5, 2.5],
        ["lock_wait", 2.6, 0.5],
    ]

    summary = summarise(checkpoints, 1.0, 3.0)

    assert summary["checkpoint_passive_ms"]["total"] == 10.0
    assert summary["checkpoint_truncate_ms"]["n"] == 1
    assert summary["checkpoint_restart_ms"]["total"] == 3.0
    assert summary["lock_wait_ms"] == {"n": 2, "p50": 2.5, "p99": 2.5, "max": 2.5, "total": 3.0}


def test_a_probed_begin_records_its_wait_and_counts_a_write_sent_away_from_a_busy_lock(probe: Probe) -> None:
    timed_begin = load_probe._timed_lock_wait(probe, lambda connection, cursor: None)
    counted_begin = load_probe._counted_busy_begins(probe, lambda connection: connection == "free")

    timed_begin("connection", "cursor")
    assert counted_begin("free")
    assert not counted_begin("locked")

    assert [record[0] for record in probe._records] == ["lock_wait"]
    assert probe.counts == {"lock_busy_begins": 1}


async def test_a_probed_trip_records_the_wait_for_the_thread_the_work_and_the_wait_to_resume(probe: Probe) -> None:
    class Driver:
        async def run(self, function: Any, *args: Any) -> Any:
            return await asyncio.to_thread(function, *args)

    timed_run = load_probe._timed_trip(probe, Driver.run)

    assert await timed_run(Driver(), lambda value: value + 1, 41) == 42
    [(kind, _at, *parts)] = probe._records
    assert kind == "trip_other"
    assert len(parts) == 3
    assert min(parts) >= 0


async def test_with_inline_writer_trips_a_trip_in_a_writers_turn_runs_on_the_calling_thread(
    probe: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(load_probe.INLINE_WRITER_TRIPS_ENV, "1")

    class Driver:
        sqlite_connection = "connection"

        async def run(self, function: Any, *args: Any) -> Any:
            raise AssertionError("not sent to the driver's thread")

    timed_run = load_probe._timed_trip(probe, Driver.run)
    turn = load_probe._writer_turn.set("writer_publish")
    try:
        ran_on = await timed_run(Driver(), lambda connection, value: (connection, value, threading.get_ident()), 7)
    finally:
        load_probe._writer_turn.reset(turn)

    assert ran_on == ("connection", 7, threading.get_ident())
    assert [record[0] for record in probe._records] == ["trip_inline"]


def test_probe_times_each_garbage_collection_with_its_generation(probe: Probe) -> None:
    gc.callbacks.append(probe.on_gc)
    gc.collect(1)
    probe.dump()

    collections = [record for record in read_records(probe.path.parent) if record[0] == "gc"]

    assert collections[-1][2] == 1
    assert collections[-1][3] >= 0


def test_a_hook_whose_function_is_gone_is_named_and_the_others_installed(
    probe: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    hooks = {
        ("chargewire.no_such_module", "Writer", "turn"): load_probe._counted_claim,
        ("bench.load_probe", "Probe", "absent_method"): load_probe._counted_claim,
    }
    monkeypatch.setattr(load_probe, "_HOOKS", hooks)

    assert install_hooks(probe) == ["chargewire.no_such_module.Writer.turn", "bench.load_probe.Probe.absent_method"]


def test_lateness_says_how_many_events_and_seconds_were_late() -> None:
    timed = [(100.0, 2.0), (100.5, LATE_MS + 1), (101.2, 3.0), (102.9, LATE_MS + 30), (102.95, LATE_MS + 10)]

    assert lateness(timed) == {"over_ms": LATE_MS, "share_percent": 60.0, "seconds": 2}


def test_summary_adds_each_processs_thread_cpu_over_the_window_per_second() -> None:
    records: list[list[Any]] = [
        ["threads", 0.9, {"MainThread": 1.0, "process": 1.5}, 10],
        ["threads", 0.9, {"MainThread": 2.0, "process": 2.0}, 11],
        ["threads", 3.2, {"MainThread": 2.0, "process": 2.8}, 10],
        ["threads", 3.3, {"MainThread": 2.5, "process": 2.6}, 11],
        ["threads", 4.5, {"MainThread": 9.0, "process": 9.0}, 10],
    ]

    assert summarise(records, 1.0, 3.0)["thread_cpu_ms_per_s"] == {"MainThread": 750.0, "process": 950.0}


def test_probe_dumps_its_threads_cpu_by_name_with_the_whole_process(probe: Probe) -> None:
    probe.dump()

    [threads] = [record for record in read_records(probe.path.parent) if record[0] == "threads"]

    assert {"MainThread", "process"} <= set(threads[2])
    assert threads[3] > 0
