"""SQLite's wake-ups across processes: a worker watches the file for other connections' commits.

SQLite has no NOTIFY: a `CommitWatcher` in each worker process reads `PRAGMA data_version` every few
milliseconds on a connection of its own (a memory read, no lock), and when some connection has committed
since, wakes its dispatcher if the newest work changed (new deliveries or new events were published) and
some is still due (no other worker took it yet). The first question filters out the worker's own commits
(leases, outcomes), which woke a claim each while a backlog was due; the second, wakes that would only race
another worker to rows it already leased, or look up a Kafka stream another worker holds. A Kafka stream's own
records are new deliveries and do wake its worker while the stream is behind: that worker is streaming anyway,
and the wake costs it a read. A resend or retry made due in another process reuses existing rows: its signal
(below) makes the watcher ask whether work is due even though nothing new was written; without a signal it is
picked up by the worker's idle poll (`worker_idle_poll_s`).

The watch runs in a thread of its own, on a connection of its own, and the event loop hears of it only to wake
the dispatcher. Asked through the pooled engine, each of the two questions cost a connection checkout and two
trips to the driver's thread (each a wake-up of the loop) after every commit, the process's own included; and
a poll on the loop woke it 200 times a second, which was half of an idle `serve`'s CPU.

The watcher looks every 5 ms while other processes' work keeps waking its worker, and every 20 ms once none
has for a second: in a lone `serve`, whose own publishes wake nobody (its worker took them already), each look
cost about 0.1 ms of CPU (a thread's wake-up and a read of the WAL index), 200 times a second, idle or not. The
first wake after a quiet spell comes within 20 ms instead of 5; the next ones within 5 again.

Processes that commit new work also signal the watchers directly (`sqlite_wake_signal`): a watcher that bound its
socket looks as soon as a signal comes, and polls only as a fallback, every 0.1 s, or at the quick pace for a
second after a poll found work no signal announced (a sender that cannot signal).
"""

from __future__ import annotations

import asyncio
import select
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Dialect

from chargewire.store.dialects.base import WakeHooks
from chargewire.store.dialects.sqlite_one_trip import DriverStatement, driver_statement
from chargewire.store.dialects.sqlite_wake_signal import SignalSocket


@dataclass(frozen=True, slots=True)
class LookPace:
    """How often a watcher looks: every `quick_s` for `quick_for_s` after it woke its worker, else every `quiet_s`."""

    quick_s: float = 0.005
    quiet_s: float = 0.02
    quick_for_s: float = 1.0

    def wait_s(self, now: float, last_wake: float | None) -> float:
        """How long to wait before the next look, at monotonic time `now`, the last wake having been at `last_wake`."""
        if last_wake is not None and now - last_wake < self.quick_for_s:
            return self.quick_s
        return self.quiet_s


# With the signal, the poll is a fallback: a look every 0.1 s costs an idle worker a tenth of the CPU of the
# 20 ms pace, and only work of a process that cannot signal waits for it.
SIGNALLED_PACE = LookPace(quiet_s=0.1)


class CommitWatcher:
    """Wakes a dispatcher when another connection commits new work (deliveries, events) to a SQLite file."""

    def __init__(self, path: Path, dialect: Dialect, hooks: WakeHooks, *, pace: LookPace | None = None) -> None:
        self._path = path
        self._dialect = dialect
        self._hooks = hooks
        self._pace = pace
        # Built once: the newest work is asked after every commit of any other connection, this process's too.
        self._newest_statement: DriverStatement = driver_statement(hooks.newest, dialect)

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until `stop` is set; raises what ended the watch otherwise."""
        loop = asyncio.get_running_loop()
        halt = threading.Event()
        ended: asyncio.Future[Any] = loop.create_future()
        signal = SignalSocket.bind(self._path)
        thread = threading.Thread(
            target=self._watch_until,
            args=(halt, signal, loop, ended),
            name=f"commit-watcher:{self._path.name}",
            daemon=True,
        )
        thread.start()
        stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait([ended, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            halt.set()
            if signal is not None:
                signal.poke()  # ends the thread's wait now, not at its next poll
            stopping.cancel()
            try:
                await ended
            finally:
                if signal is not None:
                    signal.close()

    def _watch_until(
        self,
        halt: threading.Event,
        signal: SignalSocket | None,
        loop: asyncio.AbstractEventLoop,
        ended: asyncio.Future[Any],
    ) -> None:
        """In the watcher's thread: watch until `halt` is set, then settle `ended` with how the watch ended."""
        try:
            self._watch(halt, signal, lambda deliveries_due: loop.call_soon_threadsafe(self._wake, deliveries_due))
        except BaseException as error:  # handed to the loop, which raises it in run()
            loop.call_soon_threadsafe(_settle, ended, error)
        else:
            loop.call_soon_threadsafe(_settle, ended, None)

    def _wake(self, deliveries_due: bool) -> None:
        """In the event loop: wake the dispatcher, telling it first when the look read deliveries due."""
        if deliveries_due and self._hooks.due_seen is not None:
            self._hooks.due_seen()
        self._hooks.wake()

    def _watch(self, halt: threading.Event, signal: SignalSocket | None, wake: Callable[[bool], object]) -> None:
        pace = self._pace or (LookPace() if signal is None else SIGNALLED_PACE)
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            seen, newest = _data_version(connection), self._newest(connection)
            last_wake: float | None = None
            while not halt.is_set():
                signalled = _wait(signal, pace.wait_s(time.monotonic(), last_wake))
                with _one_read(connection):
                    version = _data_version(connection)
                    if version == seen:
                        continue
                    seen = version
                    latest = self._newest(connection)
                    # A signal announces work even without new rows (a resend, a retry made due), so it always asks.
                    if latest == newest and not signalled:
                        continue
                    newest = latest
                    deliveries_due, streams_behind = self._due_now(connection)
                if deliveries_due or streams_behind:
                    wake(deliveries_due)
                    if not signalled:
                        # Work no signal announced: its process polls us, so look quickly for a while.
                        last_wake = time.monotonic()
        finally:
            connection.close()

    def _newest(self, connection: sqlite3.Connection) -> tuple[Any, ...]:
        statement = self._newest_statement
        return tuple(connection.execute(statement.sql, statement.parameters).fetchone())

    def _due_now(self, connection: sqlite3.Connection) -> tuple[bool, bool]:
        """Whether deliveries are due, and whether Kafka streams are behind (the hooks' `due`)."""
        statement = driver_statement(self._hooks.due, self._dialect, self._hooks.due_parameters())
        deliveries_due, streams_behind = connection.execute(statement.sql, statement.parameters).fetchone()
        return bool(deliveries_due), bool(streams_behind)


def _settle(ended: asyncio.Future[Any], error: BaseException | None) -> None:
    if ended.done():
        return
    if error is None:
        ended.set_result(None)
    else:
        ended.set_exception(error)


def _wait(signal: SignalSocket | None, timeout_s: float) -> bool:
    """Wait `timeout_s` or until a signal comes; whether one came (and was read)."""
    if signal is None:
        # A plain sleep, not halt.wait(): the Condition behind an Event's timed wait cost each look half again.
        time.sleep(timeout_s)
        return False
    readable, _writable, _failed = select.select([signal], [], [], timeout_s)
    return bool(readable) and signal.drain()


@contextmanager
def _one_read(connection: sqlite3.Connection) -> Iterator[None]:
    """A look's questions in one read transaction: the WAL's read lock taken and given back once (two `fcntl`),
    not once per question (six when the file changed)."""
    connection.execute("BEGIN")
    try:
        yield
    finally:
        connection.execute("COMMIT")


def _data_version(connection: sqlite3.Connection) -> int:
    # Changes whenever another connection (of any process) commits; it reads shared memory, never the disk.
    return int(connection.execute("PRAGMA data_version").fetchone()[0])
