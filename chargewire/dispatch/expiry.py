"""The expiry loop: every `retention_interval_s`, removes what has expired, shrinks the file, measures the tables.

It runs in every worker process (and `serve`'s own worker), under the worker's supervisor, but only the one
that holds the lease in `expiry_runs` expires: one row, taken with a conditional UPDATE, as Kafka streams are
leased. That works alike on SQLite and PostgreSQL and across machines, where a PostgreSQL advisory lock would
pin a connection for as long as it is held and exist on one database only; and it keeps expiry running when
the API runs with `--no-worker` beside separate workers. The holder keeps renewing it; when it stops, another
worker takes over once the lease has run out. Two expirers at once would only be wasted work: every removal
checks its rule in its own statement.

The first run comes one interval after start, so a restarted process does not expire on its way up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.dispatch.supervisor import error_class, mark_healthy
from chargewire.store.outage import is_unavailable
from chargewire.store.retention import ExpiryRun, RetentionPolicy, RetentionStore
from chargewire.waiting import wait_for_any

logger = logging.getLogger(__name__)

# The lease outlives a few missed runs, so a holder that is slow once does not hand expiry to another worker.
_LEASE_INTERVALS = 3


def retention_policy(settings: Settings) -> RetentionPolicy:
    """The retention periods and batch size the settings ask for."""
    return RetentionPolicy(
        delivered=timedelta(days=settings.retention_delivered_days),
        failed=timedelta(days=settings.retention_failed_days),
        batch_size=settings.retention_batch_size,
    )


class Expirer:
    """Runs expiry periodically, when this process holds the expiry lease."""

    def __init__(
        self,
        store: RetentionStore,
        policy: RetentionPolicy,
        owner: str,
        *,
        interval_s: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._store = store
        self._policy = policy
        self._owner = owner
        self._interval_s = interval_s
        self._clock = clock

    async def run(self, stop: asyncio.Event) -> None:
        """Expire once per interval until `stop` is set (a supervised loop)."""
        while not stop.is_set():
            await wait_for_any([stop], self._interval_s)
            if stop.is_set():
                return
            await self.run_once()
            mark_healthy()

    async def run_once(self) -> ExpiryRun | None:
        """One run, if the lease is this process's: expire, give space back, measure, and record it all.

        An error that is not an outage is recorded with the run and raised again, for the supervisor to count.
        None when another process holds the lease.
        """
        started_at = self._clock()
        lease_until = started_at + timedelta(seconds=self._interval_s * _LEASE_INTERVALS)
        if not await self._store.take_lease(self._owner, started_at, lease_until):
            return None
        removed: dict[str, int] = {}
        failure: Exception | None = None
        try:
            removed = await self._store.expire(started_at, self._policy)
            reclaimed = await self._store.upkeep.reclaim()
        except Exception as error:
            if is_unavailable(error):
                raise  # the record could not be written either; the supervisor retries
            failure, reclaimed = error, 0
        run = ExpiryRun(
            started_at=started_at,
            finished_at=self._clock(),
            removed=removed,
            error=None if failure is None else f"{error_class(failure)}: {failure}",
            tables=await self._store.measure(),
        )
        await self._store.record_run(run)
        if failure is not None:
            raise failure
        logger.info("expiry removed %s and gave back %d kB", _summary(removed), reclaimed // 1024)
        return run


def _summary(removed: dict[str, int]) -> str:
    return ", ".join(f"{rows} {table}" for table, rows in removed.items()) or "nothing"
