"""Kafka streams: a worker sends each Kafka subscription's new events straight from the event log.

A Kafka subscription gets no delivery row at publish (decision 0002). Its stream holds a position in the
numbered event log; a stream is ready when events of its names lie past that position, no other worker
holds its lease, and none of its deliveries is pending. A worker leases a ready stream and sends batches of
`kafka_stream_batch_size` records through the Kafka channel, with up to `_BATCHES_AWAITING_ACKS` waiting for
their acks: the next batch is read and produced while the last ones' acks come in and while acknowledged
ones are recorded. Each batch is recorded, delivery and attempt rows with the position moved past it, in one
transaction that checks the lease is still this worker's, after the batch before it; a worker that dies
leaves the lease, and the next one sends the batch again (at least once, as the row queue) once the lease runs
out or the dead worker's heartbeat has stood still long enough (`orphaned_leases`). A run that ends without
handing its lease back (the database went away) leaves it to this worker's next look: it streams on once the
database answers, where waiting for the lease would have stalled the subscription.

A batch with failures ends the run. Its failed records are pending rows now, retried on the row queue's
schedule with its breaker, resend and disabling, in publishing order; the stream waits until they are done.
The run's batches share an `OrderFence`: a batch not yet handed to librdkafka when a record failed is
refused unsent and becomes rows behind the failed ones, so one entity's events do not overtake each other
across an outage (decision 0005). A batch already produced behind the failed one is still recorded as it
came out.

When to look for ready streams: after each publish while a Kafka subscription has a stream, and at least every
`worker_poll_interval_s`. With none, a publish cannot make a stream ready: the streamer looks when a Kafka
subscription is created, changed or enabled in this process (`streams_changed`), when another process's commit
or NOTIFY is heard (`heard`: at most once per poll interval, as they come with each of its publishes), and at
least every `worker_idle_poll_s`. Its look every 0.2 s had been an idle `serve`'s largest poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from chargewire.channels.base import OrderFence
from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.dispatch.supervisor import mark_healthy
from chargewire.dispatch.targets import DeliveryTarget, TargetSource
from chargewire.filters import FilterCache, Predicate
from chargewire.kafka.orphaned_leases import OrphanedLeases
from chargewire.kafka.stream_store import StreamStore
from chargewire.kafka.streams import LeaseLost, Stream
from chargewire.models import DeliveryStatus
from chargewire.store.delivery_records import AttemptRecord, ClaimedDelivery, first_retry_at
from chargewire.store.outage import is_unavailable
from chargewire.waiting import wait_for_any

logger = logging.getLogger(__name__)

# Batches are produced while the ones before them wait for their acks, which come ~90 ms after a 2,000-record
# batch is handed over (librdkafka's one broker thread gzips it first): 3 kept the producer busier than 2, once
# recordings no longer held the stream up (SQLite, one worker, four rounds back to back: +4 to +15 % end to end).
_BATCHES_AWAITING_ACKS = 3
# Batches acknowledged and waiting to be recorded, in log order, before the stream stops reading for them. On
# SQLite a recording waits for the write lock while the API ingests (in one end-to-end benchmark run, 53
# recordings waited 0.94 s in all): with 2 the stream stopped producing for those waits, with 6 it goes on
# (at most 6 batches of 2,000 records held, about 18 MB of 1 KB events).
_RECORDINGS_PENDING = 6
# A stream that has caught up keeps its lease this long for the next events: under steady traffic it is not
# looked up, leased and handed back again for every publish, with batches of a few records each.
_CAUGHT_UP_HOLD_S = 1.0

Attempter = Callable[[list[ClaimedDelivery], DeliveryTarget, OrderFence], Coroutine[Any, Any, list[AttemptRecord]]]


@dataclass
class _Batch:
    start: int
    end: int
    deliveries: list[ClaimedDelivery]
    sending: asyncio.Task[list[AttemptRecord]] | None


class KafkaStreamer:
    """Streams every ready Kafka subscription of the database it can lease, each in a task of its own."""

    def __init__(
        self,
        settings: Settings,
        streams: StreamStore,
        targets: TargetSource,
        attempt: Attempter,
        worker_id: str,
        on_retry: Callable[[datetime], None] | None = None,
    ) -> None:
        self.settings = settings
        self.worker_id = worker_id
        self._streams = streams
        self._targets = targets
        self._filters = FilterCache()
        self._attempt = attempt
        self._on_retry = on_retry
        self._running: dict[str, asyncio.Task[int]] = {}
        self._wake = asyncio.Event()
        # Whether the last look found an enabled Kafka subscription's stream. Without one a publish has nothing for
        # a look to find, and a look (a read) after each publish was 0.7 reads per event of a webhook-only `serve`
        # at 200 events/s.
        self._streams_exist = True
        self._looked_at = 0.0  # monotonic time of the last look
        self._heard_look: asyncio.TimerHandle | None = None  # a look that `heard` put off
        self._news: dict[str, asyncio.Event] = {}  # per running stream: events were published since it looked
        self._stopping = False
        self._outage: Exception | None = None  # met by a stream, raised by run()
        self._orphans = OrphanedLeases(streams, worker_id)

    @property
    def streams_exist(self) -> bool:
        """Whether the last look found an enabled Kafka subscription with a stream."""
        return self._streams_exist

    def wake(self) -> None:
        """Look for ready streams now instead of at the next poll (after a publish, here or elsewhere).

        When the last look found no enabled Kafka subscription, a publish has nothing for a look to find: it
        wakes nothing (see the module docstring for what does).
        """
        if self._streams_exist:
            self._wake.set()
        for news in self._news.values():
            news.set()

    def streams_changed(self) -> None:
        """A Kafka subscription was created, changed or enabled: look for ready streams now."""
        self._streams_exist = True
        self._wake.set()

    def heard(self) -> None:
        """Another process committed or notified: look now if a stream exists, else within the poll interval.

        Without a known stream the look is put off until one poll interval after the last: another process's
        wakes come with each of its publishes, and a look after each was a read per event of a `worker`.
        """
        if self._streams_exist:
            self.wake()
            return
        if self._heard_look is not None:
            return
        delay_s = self._looked_at + self.settings.worker_poll_interval_s - time.monotonic()
        if delay_s <= 0:
            self._wake.set()
        else:
            self._heard_look = asyncio.get_running_loop().call_later(delay_s, self._look_put_off)

    def _look_put_off(self) -> None:
        self._heard_look = None
        self._wake.set()

    def _wait_s(self) -> float:
        """How long to wait for a wake before looking again anyway."""
        poll_s = self.settings.worker_poll_interval_s
        return poll_s if self._streams_exist else max(poll_s, self.settings.worker_idle_poll_s)

    async def run(self, stop: asyncio.Event) -> None:
        """Stream until `stop` is set, then record the batches already sent and hand the leases back.

        An outage met by the look for ready streams or by a stream is raised here, for the supervisor to
        retry after a backoff; the streams it interrupted are sent again from their positions.
        """
        self._stopping = False
        self._outage = None
        try:
            while not stop.is_set():
                self._wake.clear()
                if self._streams_exist:
                    await self._orphans.hand_back()
                await self._start_ready()
                mark_healthy()
                await wait_for_any([self._wake, stop], self._wait_s())
                if self._outage is not None:
                    raise self._outage
        finally:
            self._stopping = True
            if self._heard_look is not None:
                self._heard_look.cancel()
                self._heard_look = None
            self.wake()  # streams holding on for news stop waiting
            if self._running:
                await asyncio.wait(list(self._running.values()), timeout=self.settings.kafka_message_timeout_s + 5)

    async def run_once(self) -> int:
        """Stream every ready stream until it has caught up; returns how many records were attempted (for tests)."""
        sent = await asyncio.gather(*await self._start_ready(hold_s=0.0))
        return sum(sent)

    async def _start_ready(self, hold_s: float = _CAUGHT_UP_HOLD_S) -> list[asyncio.Task[int]]:
        self._looked_at = time.monotonic()
        look = await self._streams.look(utcnow(), self.worker_id)
        self._streams_exist = look.streams_exist
        started = []
        for stream in look.ready:
            if stream.subscription_id not in self._running:
                task = asyncio.create_task(self._stream(stream, hold_s))
                self._running[stream.subscription_id] = task
                task.add_done_callback(self._finished)
                started.append(task)
        return started

    def _finished(self, task: asyncio.Task[int]) -> None:
        for subscription_id, running in list(self._running.items()):
            if running is task:
                del self._running[subscription_id]

    async def _stream(self, stream: Stream, hold_s: float) -> int:
        """Lease one stream and send its backlog; returns how many records were attempted."""
        now = utcnow()
        lease = timedelta(seconds=self.settings.worker_lease_s)
        if not await self._streams.lease(stream, self.worker_id, now, now + lease):
            return 0  # another worker was quicker
        held = True
        try:
            attempted = await self._send_backlog(stream, hold_s)
            # Events published while it ran woke a look that passed it by, as it was running: look again.
            self._wake.set()
            return attempted
        except LeaseLost:
            held = False
            logger.warning(
                "the lease of Kafka stream %s ran out; another worker sends its batch again", stream.subscription_id
            )
            return 0
        except Exception as error:
            if is_unavailable(error):
                self._outage = error  # the supervisor logs it, once per outage
                self._wake.set()
            else:
                logger.exception("Kafka stream %s failed; it is sent again from its position", stream.subscription_id)
            return 0
        finally:
            if held:
                await self._release(stream)

    async def _send_backlog(self, stream: Stream, hold_s: float) -> int:
        """Send batches until the stream has caught up and no news came for `hold_s`, a batch fails or the
        worker stops.

        Three stages overlap: a batch is read and produced while the ones before await their acks and are
        recorded. Recording never holds up the next read: each batch's recording waits for the one before
        it (the log order), in a task of its own, and at most `_RECORDINGS_PENDING` wait at a time.
        """
        subscription_id = stream.subscription_id
        news = self._news[subscription_id] = asyncio.Event()
        batches: deque[_Batch] = deque()
        recordings: deque[asyncio.Task[None]] = deque()
        position = stream.position
        # Shared by the run's batches: once a record fails, the batches behind it go unsent, and so nothing
        # published after it reaches the topic before its retry (issue 24).
        fence = OrderFence()
        reading, caught_up = True, False
        attempted = 0
        try:
            while True:
                while recordings and recordings[0].done():
                    recordings.popleft().result()  # a recording that failed ends the run here
                if fence.broken:
                    reading = caught_up = False  # a batch in flight failed: read nothing more
                if reading and not self._stopping and len(batches) < _BATCHES_AWAITING_ACKS:
                    news.clear()  # what is published from here on, this read may miss: it will be news
                    # Each batch takes the subscription as it is now (a PUT shows within the targets' cache time);
                    # the read checks in the database that it is still an enabled Kafka subscription.
                    target = (await self._targets.targets([subscription_id])).get(subscription_id)
                    if target is None:  # deleted
                        reading = caught_up = False
                        continue
                    names = target.subscription.notifications
                    read = await self._streams.read(stream, names, position, self.settings.kafka_stream_batch_size)
                    if read.stopped:
                        reading = caught_up = False
                        continue
                    subscription = target.subscription
                    wanted = self._filters.predicate(subscription.id, subscription.updated_at, subscription.filter)
                    chosen = _matching(read.deliveries, wanted if subscription.filter else None)
                    if read.position > position:
                        sending = asyncio.create_task(self._attempt(chosen, target, fence)) if chosen else None
                        batches.append(_Batch(position, read.position, chosen, sending))
                        position = read.position
                    caught_up = read.at_end and not chosen
                    reading = not caught_up
                elif batches:
                    batch = batches.popleft()
                    records = await batch.sending if batch.sending is not None else []
                    attempted += len(records)
                    if any(record.status is not DeliveryStatus.DELIVERED for record in records):
                        reading = caught_up = False  # the failed records are pending rows now: they go first
                    if len(recordings) >= _RECORDINGS_PENDING:
                        await recordings.popleft()
                    previous = recordings[-1] if recordings else None
                    recordings.append(asyncio.create_task(self._record_in_turn(previous, stream, batch, records)))
                elif caught_up and not self._stopping and await _set_within(news, hold_s):
                    reading, caught_up = True, False
                else:
                    break
            while recordings:
                await recordings.popleft()
        finally:
            del self._news[subscription_id]
            for batch in batches:
                if batch.sending is not None:
                    batch.sending.cancel()
            # A batch already sent is still recorded, before the lease is handed back.
            for recording in recordings:
                await _settled(recording)
        return attempted

    async def _record_in_turn(
        self, previous: asyncio.Task[None] | None, stream: Stream, batch: _Batch, records: list[AttemptRecord]
    ) -> None:
        """Record a batch once the batch before it is recorded; if that one failed, fail the same way."""
        if previous is not None:
            await previous
        await self._streams.record_batch(
            stream,
            self.worker_id,
            (batch.start, batch.end),
            list(zip(batch.deliveries, records, strict=True)),
            utcnow() + timedelta(seconds=self.settings.worker_lease_s),
        )
        retry_at = first_retry_at(records)
        if retry_at is not None and self._on_retry is not None:
            self._on_retry(retry_at)

    async def _release(self, stream: Stream) -> None:
        try:
            await self._streams.release(stream.subscription_id, self.worker_id)
        except Exception as error:
            if not is_unavailable(error):
                logger.exception("could not hand back the lease of Kafka stream %s", stream.subscription_id)
            logger.warning(
                "the lease of Kafka stream %s was not handed back: this worker takes it up again once the database "
                "answers, any other once it runs out",
                stream.subscription_id,
            )


async def _settled(task: asyncio.Task[None]) -> None:
    """Wait for `task` to end, whatever its outcome: the caller is failing for a reason of its own already."""
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()  # retrieved, so that it is not reported as never retrieved


async def _set_within(event: asyncio.Event, timeout_s: float) -> bool:
    """Whether `event` is set within `timeout_s`."""
    if timeout_s <= 0:
        return event.is_set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout_s)
    return event.is_set()


def _matching(deliveries: list[ClaimedDelivery], wanted: Predicate | None) -> list[ClaimedDelivery]:
    if wanted is None:
        return deliveries
    return [delivery for delivery in deliveries if wanted(orjson.loads(delivery.payload))]
