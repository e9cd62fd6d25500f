"""SQLite's direct wake-up signal: a process that commits new work signals every other process's commit watcher.

The watchers here poll once a minute (`NO_POLL`), so a wake within seconds came from a signal.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.models import DeliveryStatus
from chargewire.runtime import Runtime
from chargewire.store.dialects.sqlite_wake_signal import SignalSender, signal_directory
from chargewire.store.dialects.sqlite_wakeups import CommitWatcher, LookPace
from tests.integration.dispatch.conftest import Subscribe
from tests.support.history import publish_with_outcome, subscribe_to_boots

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

HARDWARE = load_event_types()["HardwareStatusNotification"].example
NO_POLL = LookPace(quick_s=60.0, quiet_s=60.0)
WITHIN_S = 10.0
# Another process's socket, as the sender sees it: its name starts with a pid that is not this process's.
OTHER_PROCESS_SOCKET = "4194305-test"

Watch = Callable[[], Awaitable[asyncio.Queue[None]]]


@pytest.fixture
def database_file(runtime: Runtime) -> Path:
    """The test's SQLite file."""
    assert runtime.database.sqlite_file is not None
    return runtime.database.sqlite_file


@pytest.fixture
async def watch(runtime: Runtime) -> AsyncIterator[Watch]:
    """Start commit watchers on the runtime's file that never poll in a test's time; each wake goes on a queue."""
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    async def start() -> asyncio.Queue[None]:
        woken: asyncio.Queue[None] = asyncio.Queue()
        hooks = runtime.stream_store.wake_hooks(lambda: woken.put_nowait(None), f"wrk_{len(tasks)}")
        assert runtime.database.sqlite_file is not None
        watcher = CommitWatcher(runtime.database.sqlite_file, runtime.database.engine.dialect, hooks, pace=NO_POLL)
        sockets = _sockets(runtime.database.sqlite_file)
        tasks.append(asyncio.create_task(watcher.run(stop)))
        await asyncio.sleep(0.1)  # its thread's first read, which every later commit is compared with
        assert len(_sockets(runtime.database.sqlite_file)) == len(sockets) + 1
        return woken

    yield start
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), WITHIN_S)


@pytest.fixture
def other_process_socket(database_file: Path) -> Iterator[socket.socket]:
    """A socket in the signal directory named as another process's watcher would be."""
    directory = signal_directory(database_file)
    directory.mkdir(exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(directory / OTHER_PROCESS_SOCKET))
    sock.settimeout(WITHIN_S)
    yield sock
    sock.close()


def _sockets(database_file: Path) -> set[str]:
    directory = signal_directory(database_file)
    return {path.name for path in directory.iterdir()} if directory.is_dir() else set()


def _signal(database_file: Path) -> None:
    """Send the signal to every socket in the directory, as another process's `SignalSender` does."""
    directory = signal_directory(database_file)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        for name in _sockets(database_file):
            sender.sendto(b"\x01", str(directory / name))


def _signal_from_another_process(database_file: Path) -> None:
    code = f"from pathlib import Path; from {SignalSender.__module__} import SignalSender; "
    code += f"SignalSender(Path({str(database_file)!r})).request()"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_another_process_s_signal_after_its_commit_wakes_the_watcher_without_its_poll(
    runtime: Runtime, database_file: Path, subscribe: Subscribe, watch: Watch
) -> None:
    woken = await watch()
    await subscribe("https://receiver.example/hook", "HardwareStatusNotification")
    await runtime.publisher.publish([HARDWARE])  # this process's own signal skips this process's sockets

    await asyncio.to_thread(_signal_from_another_process, database_file)

    await asyncio.wait_for(woken.get(), WITHIN_S)


async def test_the_signal_directory_is_its_owner_s_alone(database_file: Path, watch: Watch) -> None:
    await watch()

    assert signal_directory(database_file).stat().st_mode & 0o777 == 0o700


async def test_a_signal_wakes_every_watcher_on_the_file(
    runtime: Runtime, database_file: Path, subscribe: Subscribe, watch: Watch
) -> None:
    first, second = await watch(), await watch()
    await subscribe("https://receiver.example/hook", "HardwareStatusNotification")
    await runtime.publisher.publish([HARDWARE])

    _signal(database_file)

    await asyncio.wait_for(asyncio.gather(first.get(), second.get()), WITHIN_S)


async def test_a_signal_without_new_due_work_wakes_no_one(
    runtime: Runtime, database_file: Path, subscribe: Subscribe, watch: Watch
) -> None:
    woken = await watch()
    await runtime.publisher.publish([HARDWARE])  # no subscriber: no delivery

    _signal(database_file)
    await subscribe("https://receiver.example/hook", "HardwareStatusNotification")
    _signal(database_file)
    await asyncio.sleep(0.2)  # many times what a signalled look takes

    assert woken.empty()


async def test_a_signal_after_a_resend_wakes_the_watcher_though_no_new_rows_were_written(
    runtime: Runtime, database_file: Path, watch: Watch
) -> None:
    subscription_id = await subscribe_to_boots(runtime)
    await publish_with_outcome(runtime, 2, DeliveryStatus.FAILED)
    woken = await watch()

    assert await runtime.delivery_store.requeue_failed(subscription_id, ["BootNotification"], None, None, utcnow())
    _signal(database_file)  # as the resending process's sender does after its commit

    await asyncio.wait_for(woken.get(), WITHIN_S)


async def test_a_publish_that_makes_deliveries_signals_the_other_processes(
    runtime: Runtime, subscribe: Subscribe, other_process_socket: socket.socket
) -> None:
    await subscribe("https://receiver.example/hook", "HardwareStatusNotification")

    await runtime.publisher.publish([HARDWARE])

    assert await asyncio.to_thread(other_process_socket.recv, 16) == b"\x01"


async def test_the_socket_of_a_killed_process_is_removed_by_the_next_signal(database_file: Path) -> None:
    directory = signal_directory(database_file)
    directory.mkdir(exist_ok=True)
    killed = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    killed.bind(str(directory / OTHER_PROCESS_SOCKET))
    killed.close()  # as a killed process leaves it: the file stays, nobody reads it

    sender = SignalSender(database_file)
    sender.request()
    await sender.aclose()

    assert OTHER_PROCESS_SOCKET not in _sockets(database_file)


async def test_a_watcher_that_cannot_make_its_socket_says_so_once_and_keeps_polling(
    runtime: Runtime, database_file: Path, subscribe: Subscribe, caplog: pytest.LogCaptureFixture
) -> None:
    signal_directory(database_file).write_text("in the way")  # a file where the directory would be
    woken: asyncio.Queue[None] = asyncio.Queue()
    hooks = runtime.stream_store.wake_hooks(lambda: woken.put_nowait(None), "wrk_polling")
    watcher = CommitWatcher(database_file, runtime.database.engine.dialect, hooks)
    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING):
        task = asyncio.create_task(watcher.run(stop))
        await asyncio.sleep(0.1)
        await subscribe("https://receiver.example/hook", "HardwareStatusNotification")
        await runtime.publisher.publish([HARDWARE])
        await asyncio.wait_for(woken.get(), WITHIN_S)
        stop.set()
        await asyncio.wait_for(task, WITHIN_S)

    assert [record.message for record in caplog.records if "polling only" in record.message] != []


async def test_a_signal_to_a_process_that_reads_none_neither_blocks_nor_raises(
    runtime: Runtime, other_process_socket: socket.socket
) -> None:
    sender = SignalSender(runtime.database.sqlite_file or Path())
    for _ in range(5_000):  # far past a datagram socket's queue
        sender.request()
    await sender.aclose()

    assert other_process_socket.recv(16) == b"\x01"


async def test_a_sender_lists_the_directory_again_only_when_a_watcher_comes_or_goes(
    database_file: Path, other_process_socket: socket.socket
) -> None:
    directory = signal_directory(database_file)
    long_ago_ns = time.time_ns() - 60 * 10**9
    os.utime(directory, ns=(long_ago_ns, long_ago_ns))  # its last watcher came a minute ago, as on a running server
    sender = SignalSender(database_file)
    for _ in range(3):
        sender.request()
    listed_before_a_newcomer = sender.listings

    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as newcomer:
        newcomer.bind(str(directory / "4194306-newcomer"))
        newcomer.settimeout(WITHIN_S)
        sender.request()
        assert newcomer.recv(16) == b"\x01"
    os.unlink(directory / "4194306-newcomer")
    await sender.aclose()

    assert (listed_before_a_newcomer, sender.listings) == (1, 2)
    assert [other_process_socket.recv(16) for _ in range(4)] == [b"\x01"] * 4


async def test_a_commit_with_no_process_watching_lists_no_directory(database_file: Path) -> None:
    sender = SignalSender(database_file.with_name("watched-by-no-one.db"))

    sender.request()
    await sender.aclose()

    assert sender.listings == 0
