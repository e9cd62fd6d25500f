"""The records of finished attempts, gathered for a moment and written in one transaction.

A flush waits up to `_FLUSH_INTERVAL_S` for more records, and starts at once when `flush_batch` are waiting, so
a run of attempts costs one write. Until its records are written a delivery still counts against the worker's
room; `on_recorded` tells the dispatcher how many no longer do.

Why 100 ms: at low rates each attempt ends alone, and a flush of one record cost ~1 ms of CPU on SQLite (a
transaction, a trip to the driver's thread, each a cold round of the event loop), about what the attempt itself
cost; with 20 ms a worker at 50 attempts/s wrote one record per flush, with 50 ms one per 2.5 attempts, with
100 ms one per 5. The wait is no one's latency: the receiver has its request, and the next attempt of an ordered
subscription waits for the attempt, not its record; only the log shows the attempt that much later, and a crash
in between sends it again, as one before the flush always did. A batch is capped at a quarter of the worker's
room, so that records waiting never keep a busy worker from taking work.

With nothing pending it waits for `add` alone, with no timer: records come from nowhere else, and a timed wake
every 0.2 s was one of an idle worker's polls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from chargewire.dispatch.supervisor import mark_healthy
from chargewire.store.delivery_records import AttemptRecord, first_retry_at
from chargewire.store.delivery_store import DeliveryStore
from chargewire.store.outage import is_unavailable

logger = logging.getLogger(__name__)

_FLUSH_INTERVAL_S = 0.1
_FLUSH_BATCH = 200
# A worker that stops records what finished; through an outage it tries this long, from this first pause.
_EXIT_FLUSH_S = 5.0
_EXIT_FLUSH_FIRST_DELAY_S = 0.1


class RecordFlusher:
    """Writes the attempt records it is given, in batches, and says how many each write took off the worker and
    when the first retry it wrote falls due."""

    def __init__(
        self,
        deliveries: DeliveryStore,
        on_recorded: Callable[[int], None],
        on_retry: Callable[[datetime], None],
        max_in_flight: int = 4 * _FLUSH_BATCH,
    ) -> None:
        self._deliveries = deliveries
        self._on_recorded = on_recorded
        self._on_retry = on_retry
        self._pending: list[AttemptRecord] = []
        self.flush_batch = max(1, min(_FLUSH_BATCH, max_in_flight // 4))
        # The wait in progress, resolved early once `_wake_at` records are pending (or the worker stops).
        self._wakeup: asyncio.Future[None] | None = None
        self._wake_at = 1

    def add(self, records: Sequence[AttemptRecord]) -> None:
        """Queue records for the next flush (one already running writes only what it took when it began)."""
        self._pending.extend(records)
        if len(self._pending) >= self._wake_at:
            self._wake()

    async def run(self, stop: asyncio.Event) -> None:
        """Write records as they come until `stop` is set."""
        # One watcher of `stop` for the whole run: waiting on it afresh with each wait cost two tasks per flush.
        stopping = asyncio.ensure_future(stop.wait())
        stopping.add_done_callback(lambda _done: self._wake())
        try:
            while not stop.is_set():
                if not self._pending:
                    await self._wait(None, 1)
                    continue
                if len(self._pending) < self.flush_batch:
                    await self._wait(_FLUSH_INTERVAL_S, self.flush_batch)
                await self._flush_once()
                mark_healthy()
        finally:
            stopping.cancel()

    async def _wait(self, timeout_s: float | None, records: int) -> None:
        """Wait until `records` are pending, the worker stops, or `timeout_s` (if any) has passed."""
        loop = asyncio.get_running_loop()
        self._wakeup, self._wake_at = loop.create_future(), records
        timer = loop.call_later(timeout_s, self._wake) if timeout_s is not None else None
        try:
            await self._wakeup
        finally:
            if timer is not None:
                timer.cancel()
            self._wakeup, self._wake_at = None, 1

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

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
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            await self._deliveries.record_attempts(batch)
        except Exception as error:
            if is_unavailable(error):
                self._pending[:0] = batch
                raise
            logger.exception("could not record %d attempts; their leases will run out and they are retried", len(batch))
        else:
            retry_at = first_retry_at(batch)
            if retry_at is not None:
                self._on_retry(retry_at)
        self._on_recorded(len(batch))
