"""A worker's heartbeat: every `HEARTBEAT_INTERVAL_S` it stores its loops' states and its last error.

Whoever reads the heartbeats (`/readyz`, `/metrics`, the back office) calls a worker stale when its last
heartbeat is older than `STALE_AFTER_S`: a worker that hangs, or cannot reach the database, shows within
seconds. A worker that stops says so in a last heartbeat, so it is not mistaken for a stalled one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import datetime

from chargewire.clock import utcnow
from chargewire.dispatch.supervisor import Supervisor, TaskStatus, mark_healthy
from chargewire.store.worker_store import WorkerHeartbeat, WorkerStore
from chargewire.waiting import wait_for_any

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 2.0
STALE_AFTER_S = 10.0
# The last heartbeat of a stopping worker is one try, bounded: the database may be the reason it stops.
_LAST_BEAT_TIMEOUT_S = 2.0


class Heartbeat:
    """Writes one worker's heartbeat from its supervisor's view of its loops."""

    def __init__(
        self,
        store: WorkerStore,
        worker_id: str,
        supervisor: Supervisor,
        *,
        interval_s: float = HEARTBEAT_INTERVAL_S,
    ) -> None:
        self._store = store
        self._worker_id = worker_id
        self._supervisor = supervisor
        self._interval_s = interval_s
        self._started_at = utcnow()
        self._host = socket.gethostname()

    async def run(self, stop: asyncio.Event) -> None:
        """Beat until `stop` is set (a supervised loop)."""
        while not stop.is_set():
            await self._store.beat(self.current())
            mark_healthy()
            await wait_for_any([stop], self._interval_s)

    async def last_beat(self) -> None:
        """Say that this worker stopped; one bounded try, as the database may be what stopped it."""
        try:
            await asyncio.wait_for(self._store.beat(self.current(stopped_at=utcnow())), _LAST_BEAT_TIMEOUT_S)
        except Exception as error:
            logger.warning("could not store the last heartbeat of worker %s: %s", self._worker_id, error)

    def current(self, stopped_at: datetime | None = None) -> WorkerHeartbeat:
        """This worker's heartbeat now."""
        statuses = self._supervisor.statuses()
        last = _last_fault(statuses)
        return WorkerHeartbeat(
            worker_id=self._worker_id,
            host=self._host,
            pid=os.getpid(),
            started_at=self._started_at,
            heartbeat_at=utcnow(),
            tasks={status.name: status.state.value for status in statuses},
            last_error=f"{last.name}: {last.last_error}" if last is not None else None,
            last_error_at=last.last_error_at if last is not None else None,
            stopped_at=stopped_at,
        )


def _last_fault(statuses: list[TaskStatus]) -> TaskStatus | None:
    faulted = [status for status in statuses if status.last_error_at is not None]
    return max(faulted, key=lambda status: status.last_error_at or utcnow(), default=None)
