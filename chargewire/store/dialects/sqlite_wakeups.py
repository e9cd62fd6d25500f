"""SQLite's wake-ups across processes: a worker watches the file for other connections' commits.

SQLite has no NOTIFY: a `CommitWatcher` in each worker process reads `PRAGMA data_version` every few
milliseconds on a connection of its own (a memory read, no lock), and when some connection has committed
since, wakes its dispatcher if the newest work changed (new deliveries or new events were published) and
some is still due (no other worker took it yet). The first question filters out the worker's own commits
(leases, outcomes), which woke a claim each while a backlog was due; the second, wakes that would only race
another worker to rows it already leased, or look up a Kafka stream another worker holds. A Kafka stream's own
records are new deliveries and do wake its worker while the stream is behind: that worker is streaming anyway,
and the wake costs it a read. A resend or retry made in another process reuses existing rows and is picked up
by the poll.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

from chargewire.waiting import wait_for_any


class CommitWatcher:
    """Wakes a dispatcher when another connection commits new work (deliveries, events) to a SQLite file."""

    def __init__(
        self,
        path: Path,
        newest: Callable[[], Awaitable[object]],
        due_now: Callable[[], Awaitable[bool]],
        wake: Callable[[], None],
        *,
        interval_s: float = 0.005,
    ) -> None:
        self._path = path
        self._newest = newest
        self._due_now = due_now
        self._wake = wake
        self._interval_s = interval_s

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until `stop` is set."""
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            seen, newest = _data_version(connection), await self._newest()
            while not stop.is_set():
                await wait_for_any([stop], self._interval_s)
                version = _data_version(connection)
                if version != seen:
                    seen = version
                    latest = await self._newest()
                    if latest != newest:
                        newest = latest
                        if await self._due_now():
                            self._wake()
        finally:
            connection.close()


def _data_version(connection: sqlite3.Connection) -> int:
    # Changes whenever another connection (of any process) commits; it reads shared memory, never the disk.
    return int(connection.execute("PRAGMA data_version").fetchone()[0])
