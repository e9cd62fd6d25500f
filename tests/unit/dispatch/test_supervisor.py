"""The supervisor retries a loop through an outage, logging it once per episode, and stops everything for a fault
that retrying cannot clear."""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3

import pytest

from chargewire.dispatch.supervisor import Loop, Supervisor, TaskState, mark_healthy
from chargewire.errors import ConfigurationError, TaskFailed


def _supervisor(stop: asyncio.Event, give_up_after: int = 3) -> Supervisor:
    return Supervisor(stop, first_delay_s=0.001, max_delay_s=0.004, give_up_after=give_up_after, rng=random.Random(1))


def _failing(
    errors: list[Exception], stop: asyncio.Event, runs: list[int], working: asyncio.Event | None = None
) -> Loop:
    """A loop that raises the next of `errors` on each start, then works (marking itself healthy) until stopped."""

    async def loop(_stop: asyncio.Event) -> None:
        runs.append(1)
        if errors:
            raise errors.pop(0)
        mark_healthy()
        if working is not None:
            working.set()
        await stop.wait()

    return loop


async def test_an_outage_is_retried_until_it_clears_and_logged_once_with_its_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = asyncio.Event()
    supervisor = _supervisor(stop)
    runs: list[int] = []
    locked = [sqlite3.OperationalError("database is locked") for _ in range(6)]
    with caplog.at_level(logging.INFO, logger="chargewire.dispatch.supervisor"):
        working = asyncio.Event()
        supervisor.start("claim", _failing(locked, stop, runs, working))
        await asyncio.wait_for(working.wait(), 5)
        assert len(runs) == 7
        [status] = supervisor.statuses()
        assert status.state is TaskState.RUNNING
        stop.set()
        await supervisor.wait()
    assert supervisor.faults == {("claim", "OperationalError"): 6}
    messages = [record.getMessage() for record in caplog.records]
    assert sum("retrying with backoff" in message for message in messages) == 1
    assert sum("recovered after" in message for message in messages) == 1
    assert status.state is TaskState.STOPPED


async def test_a_configuration_error_stops_every_loop_and_fails_the_wait() -> None:
    stop = asyncio.Event()
    supervisor = _supervisor(stop)
    runs: list[int] = []
    supervisor.start("flush", _failing([], stop, runs))
    supervisor.start("stream", _failing([ConfigurationError("no key")], stop, runs))
    with pytest.raises(TaskFailed, match="stream failed and cannot recover: ConfigurationError: no key"):
        await asyncio.wait_for(supervisor.wait(), 5)
    assert stop.is_set()


async def test_a_bug_that_repeats_ends_the_process_after_a_few_tries() -> None:
    stop = asyncio.Event()
    supervisor = _supervisor(stop, give_up_after=3)
    runs: list[int] = []
    supervisor.start("claim", _failing([KeyError("x") for _ in range(10)], stop, runs))
    with pytest.raises(TaskFailed, match="claim failed"):
        await asyncio.wait_for(supervisor.wait(), 5)
    assert len(runs) == 3


async def test_a_loop_that_returns_by_itself_counts_as_a_fault() -> None:
    stop = asyncio.Event()
    supervisor = _supervisor(stop, give_up_after=2)

    async def quits(_stop: asyncio.Event) -> None:
        return

    supervisor.start("timer", quits)
    with pytest.raises(TaskFailed, match="returned although it was not asked to stop"):
        await asyncio.wait_for(supervisor.wait(), 5)
