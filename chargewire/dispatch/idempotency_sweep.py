"""The sweep of expired idempotency keys: a supervised loop of every worker, deleting in small batches."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from chargewire.clock import utcnow
from chargewire.dispatch.supervisor import mark_healthy
from chargewire.store.idempotency_store import IdempotencyStore
from chargewire.waiting import wait_for_any

SWEEP_INTERVAL_S = 60.0
# Keys deleted per transaction: small enough that a sweep holds SQLite's write lock for milliseconds.
SWEEP_BATCH = 1000


class IdempotencySweep:
    """Deletes idempotency keys older than the retention, every `interval_s`.

    Keys are looked up regardless of their age, so the retention is the least time a key is kept.
    """

    def __init__(self, store: IdempotencyStore, retention_s: float, *, interval_s: float = SWEEP_INTERVAL_S) -> None:
        self._store = store
        self._retention = timedelta(seconds=retention_s)
        self._interval_s = interval_s

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep until `stop` is set (a supervised loop)."""
        while not stop.is_set():
            await self.sweep()
            mark_healthy()
            await wait_for_any([stop], self._interval_s)

    async def sweep(self) -> int:
        """Delete every key past the retention now; returns how many were deleted."""
        cutoff = utcnow() - self._retention
        deleted = 0
        while (batch := await self._store.delete_created_before(cutoff, SWEEP_BATCH)) > 0:
            deleted += batch
            if batch < SWEEP_BATCH:
                break
        return deleted
