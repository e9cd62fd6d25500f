"""Per-test PostgreSQL databases made ahead and dropped behind, in a thread, so a test never waits for either.

Each database is a copy of the migrated template (CREATE DATABASE ... TEMPLATE), as fresh as one made when the
test starts. Making one costs 50-200 ms of psql and server time, and the files of ~500 tests' databases left
to the end cost 15-50 s of removal when the cluster goes: done beside the running test, neither shows.
"""

from __future__ import annotations

import collections
import itertools
from concurrent.futures import Future, ThreadPoolExecutor

from chargewire.devtools.postgres import PostgresCluster


class DatabaseSupply:
    """Hands out fresh copies of `template`, keeping `ahead` made in advance; `give_back` drops one."""

    def __init__(self, cluster: PostgresCluster, template: str, ahead: int = 2) -> None:
        self._cluster = cluster
        self._template = template
        self._numbers = itertools.count()
        # One thread: creations and drops run one at a time, in the order asked, as psql did in the test.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-databases")
        self._made: collections.deque[Future[str]] = collections.deque(self._make() for _ in range(ahead))

    def take(self) -> str:
        """The URL of a fresh database (raising what creating it raised), and start making the next one."""
        made = self._made.popleft()
        self._made.append(self._make())
        return made.result()

    def give_back(self, url: str) -> None:
        """Drop a database a finished test took, ending any connection it left open."""
        name = url.rsplit("/", 1)[1]
        self._thread.submit(self._cluster.psql, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        """Wait for the drops asked so far (the cluster's folder is then small to remove); make no more."""
        for made in self._made:
            made.cancel()
        self._thread.shutdown(wait=True)

    def _make(self) -> Future[str]:
        name = f"test_{next(self._numbers)}"
        return self._thread.submit(self._cluster.create_database, name, self._template)
