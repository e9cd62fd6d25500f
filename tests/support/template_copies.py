"""Copies of the session's migrated PostgreSQL template, made ahead in a thread while the tests run.

A `CREATE DATABASE ... TEMPLATE` (a `runuser` and a `psql` with it) took 0.1-0.35 s of each PostgreSQL test's
set-up, the test waiting on the server; made ahead, that time passes while the test before runs.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
from types import TracebackType
from typing import Self

import asyncpg

from chargewire.devtools.postgres import PostgresCluster

logger = logging.getLogger(__name__)


class TemplateCopies:
    """Keeps `ahead` fresh copies of `template` ready; `take()` hands one out (its URL), or makes one then."""

    def __init__(self, cluster: PostgresCluster, template: str, prefix: str = "test", ahead: int = 2) -> None:
        self._cluster = cluster
        self._template = template
        self._names = (f"{prefix}_{number}" for number in itertools.count())
        self._names_lock = threading.Lock()
        self._ready: queue.Queue[str] = queue.Queue(maxsize=ahead)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._fill, name="template-copies", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stopping.set()
        self._thread.join(timeout=30)

    def take(self) -> str:
        """The URL of a fresh copy: one made ahead, or (once the thread has stopped) one made now."""
        while self._thread.is_alive():
            try:
                return self._ready.get(timeout=0.5)
            except queue.Empty:
                continue
        try:
            return self._ready.get_nowait()
        except queue.Empty:
            return self._cluster.create_database(self._next_name(), template=self._template)

    def _next_name(self) -> str:
        with self._names_lock:
            return next(self._names)

    def _fill(self) -> None:
        """Make copies until stopped, on one kept connection; a failure ends the thread (`take` then makes them)."""
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._copy_until_stopped())
        except Exception:
            logger.exception("making template copies ahead stopped; each test makes its own")
        finally:
            loop.close()

    async def _copy_until_stopped(self) -> None:
        connection = await asyncpg.connect(
            host="127.0.0.1", port=self._cluster.port, user=self._cluster.user, database="postgres"
        )
        try:
            while not self._stopping.is_set():
                name = self._next_name()
                await connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
                url = self._cluster.url(name)
                while not self._stopping.is_set():
                    try:
                        self._ready.put(url, timeout=0.2)
                        break
                    except queue.Full:
                        continue
        finally:
            await connection.close()
