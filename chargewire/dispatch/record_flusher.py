"""The records of finished attempts, gathered for a moment and written in one transaction.

A flush waits `_FLUSH_INTERVAL_S` for more records unless `_FLUSH_BATCH` are already waiting, so a burst of
attempts costs one write. Until its records are written a delivery still counts against the worker's room;
`on_recorded` tells the dispatcher how many no longer do.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from chargewire.dispatch.supervisor import mark_healthy
from chargewire.store.delivery_records import AttemptRecord
from chargewire.store.delivery_store import DeliveryStore
from chargewire.store.outage import is_unavailable
from chargewire.waiting import wait_for_any

logger = logging.getLogger(__name__)

_FLUSH_INTERVAL_S = 0.02
_FLUSH_BATCH = 200
# A worker that stops records what finished; through an outage it tries this long, from this first pause.
_EXIT_FLUSH_S = 5.0
_EXIT_FLUSH_FIRST_DELAY_S = 0.1


class RecordFlusher:
    """Writes the attempt records it is given, in batches, and says how many each write took off the worker."""

    def __init__(self, deliveries: DeliveryStore, poll_interval_s: float, on_recorded: Callable[[int], None]) -> None:
        self._deliveries = deliveries
        self._poll_interval_s = poll_interval_s
        self._on_recorded = on_recorded
        self._pending: list[AttemptRecord] = []
        self._waiting = asyncio.Event()

    def add(self, records: Sequence[AttemptRecord]) -> None:
        """Queue records for the next flush (one already running writes only what it took when it began)."""
        self._pending.extend(records)
        self._waiting.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Write records as they come until `stop` is set."""
        while not stop.is_set():
            await wait_for_any([self._waiting, stop], self._poll_interval_s)
            if not self._waiting.is_set():
                continue
            if len(self._pending) < _FLUSH_BATCH and not stop.is_set():
                await asyncio.sleep(_FLUSH_INTERVAL_S)
            await self._flush_once()
            mark_healthy()

    async def flush(self) -> None:
        """Record everything pending (in run_once)."""
        while self._pending:
            await self._flush_once()

    async def flush_at_exit(self) -> None:
        """Record what finished before stopping; through a short outage, retried for `_EXIT_FLUSH_S` at most."""
        deadline = time.monotonic() + _EXIT_FLUSH_S
        delay_s = _EXIT_FLUSH_FIRST_DELAY_S
        while self._pending:
            try:
                await self._flush_once()
            except Exception as error:
                if time.monotonic() + delay_s >= deadline:
                    logger.error(
                        "could not record %d attempts before stopping (%s); their leases run out and they are sent "
                        "again",
                        len(self._pending),
                        error,
                    )
                    return
                await asyncio.sleep(delay_s)
                delay_s *= 2

    async def _flush_once(self) -> None:
        """Record what is pending in one transaction; records that arrive meanwhile wait for the next one.

        When the database is unavailable the records are kept, first in line, and the error raised: the
        supervisor retries after a backoff, and a lease that ran out meanwhile only keeps the delivery from
        being updated twice (`record_attempts` checks it). Any other error drops them to their leases.
        """
        self._waiting.clear()
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            await self._deliveries.record_attempts(batch)
        except Exception as error:
            if is_unavailable(error):
                self._pending[:0] = batch
                self._waiting.set()
                raise
            logger.exception("could not record %d attempts; their leases will run out and they are retried", len(batch))
        self._on_recorded(len(batch))
        if self._pending:
            self._waiting.set()
