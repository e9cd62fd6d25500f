"""SQLite wake-ups across processes: a commit that makes deliveries due, by any other connection, wakes a worker.

Each test's runtimes poll every 30 s, so a wake within seconds came from the watcher.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime

import pytest
from sqlalchemy import event

from chargewire.catalog import load_event_types
from chargewire.config import Settings
from chargewire.runtime import Runtime
from chargewire.store.dialects.sqlite_wakeups import CommitWatcher
from tests.integration.dispatch.conftest import Subscribe
from tests.support.receiver import Receiver, always

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

HARDWARE = load_event_types()["HardwareStatusNotification"].example
WITHIN_S = 10.0


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Test settings whose poll is far slower than any timeout here."""
    return settings.model_copy(update={"worker_poll_interval_s": 30.0})


@pytest.fixture
async def other_runtime(settings: Settings, runtime: Runtime) -> AsyncIterator[Runtime]:
    """A second runtime on the same SQLite file, standing in for a worker process."""
    async with await Runtime.open(settings) as opened:
        yield opened


@pytest.fixture
def told() -> list[str]:
    """What the other runtime's commit watcher told, in order: "due" (deliveries seen due), "wake"."""
    return []


@pytest.fixture
async def wakes(other_runtime: Runtime, told: list[str]) -> AsyncIterator[asyncio.Queue[None]]:
    """The other runtime's commit watcher, each wake put on a queue (and both hooks logged in `told`)."""
    woken: asyncio.Queue[None] = asyncio.Queue()
    assert other_runtime.database.sqlite_file is not None

    def wake() -> None:
        told.append("wake")
        woken.put_nowait(None)

    hooks = replace(other_runtime.stream_store.wake_hooks(wake, "wrk_other"), due_seen=lambda: told.append("due"))
    watcher = CommitWatcher(other_runtime.database.sqlite_file, other_runtime.database.engine.dialect, hooks)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    yield woken
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_a_worker_on_a_sqlite_file_is_woken_by_a_commit_watcher(other_runtime: Runtime) -> None:
    assert isinstance(other_runtime.wake_listener(other_runtime.dispatcher()), CommitWatcher)


async def test_a_publish_through_another_runtime_wakes_the_worker(
    runtime: Runtime, subscribe: Subscribe, wakes: asyncio.Queue[None]
) -> None:
    await subscribe("https://receiver.example/hook", "HardwareStatusNotification")

    await runtime.publisher.publish([HARDWARE])

    await asyncio.wait_for(wakes.get(), WITHIN_S)


async def test_a_watcher_that_read_deliveries_due_says_so_as_it_wakes_the_worker(
    runtime: Runtime, subscribe: Subscribe, wakes: asyncio.Queue[None], told: list[str]
) -> None:
    await subscribe("https://receiver.example/hook", "HardwareStatusNotification")

    await runtime.publisher.publish([HARDWARE])
    await asyncio.wait_for(wakes.get(), WITHIN_S)

    assert told == ["due", "wake"]


async def test_a_worker_woken_by_its_watcher_claims_without_first_asking_whether_any_delivery_is_due(
    runtime: Runtime, other_runtime: Runtime, receiver: Receiver, subscribe: Subscribe
) -> None:
    await subscribe(receiver.on("/hook", always(202)), "HardwareStatusNotification")
    asked = _count_due_reads(other_runtime)
    stop = asyncio.Event()
    worker = asyncio.create_task(other_runtime.deliver(other_runtime.dispatcher(), stop))
    await asyncio.sleep(0.5)  # its first round has asked once, and its watcher has read the file
    asked_before = len(asked)

    for sent in range(1, 4):
        await runtime.publisher.publish([HARDWARE])  # this runtime runs no worker: the other process's work
        await receiver.wait_for(sent, "/hook")

    stop.set()
    await asyncio.wait_for(worker, WITHIN_S)
    assert len(asked) == asked_before


def _count_due_reads(runtime: Runtime) -> list[datetime | None]:
    """Every answer of `runtime`'s `next_due_at` read from now on, in order."""
    store = runtime.delivery_store
    next_due_at = store.next_due_at
    answers: list[datetime | None] = []

    async def logged() -> datetime | None:
        answers.append(await next_due_at())
        return answers[-1]

    store.next_due_at = logged  # type: ignore[method-assign]
    return answers


async def test_commits_that_publish_no_delivery_wake_no_one(
    runtime: Runtime, subscribe: Subscribe, wakes: asyncio.Queue[None]
) -> None:
    await runtime.publisher.publish([HARDWARE])  # no subscriber: no delivery
    await subscribe("https://receiver.example/hook", "HardwareStatusNotification")
    await asyncio.sleep(0.5)  # a hundred watcher rounds

    assert wakes.empty()


async def test_the_watcher_asks_nothing_through_the_pooled_engine_when_it_wakes_the_worker(
    runtime: Runtime, other_runtime: Runtime, subscribe: Subscribe, wakes: asyncio.Queue[None]
) -> None:
    await subscribe("https://receiver.example/hook", "HardwareStatusNotification")
    statements: list[str] = []
    event.listen(other_runtime.database.engine.sync_engine, "before_cursor_execute", _logger(statements))

    await runtime.publisher.publish([HARDWARE])
    await asyncio.wait_for(wakes.get(), WITHIN_S)

    assert statements == []  # its reads run on its own connection, in its own thread: no loop or pool work


def _logger(statements: list[str]) -> Callable[..., None]:
    def log(_connection: object, _cursor: object, statement: str, *_rest: object) -> None:
        statements.append(statement)

    return log
