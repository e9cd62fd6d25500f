"""One librdkafka producer of the pool, the thread that polls it, and how it retires.

The poll thread hands delivery reports and connection errors to the event loop, one list per poll; everything
else is read and written on the event loop only. The records' outcomes settle their batches (`acks`).

librdkafka never gives up on a cluster by itself: bad credentials, a dead address or a TLS mismatch only
surface as `error_cb` reports, while the records wait out `message.timeout.ms`. So when `error_cb` reports
`_AUTHENTICATION`, `_SSL`, `_ALL_BROKERS_DOWN` or a fatal error, the producer is retired at once: its
queued (never sent) records are purged and fail with that error as their `cause`, new records go to a fresh
producer, and the old one closes once the records already on the wire are acknowledged or time out. Only
unsent records are purged, so a record is never reported failed and then written anyway.

The producer dials its brokers through its `BrokerRoute` (`connector`). A record that fails because no
broker could be reached carries the route's explanation (`ProduceFailed.failure`: a blocked address, a TLS
failure), and librdkafka's error texts name the brokers as configured, not the listeners.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from chargewire.kafka.acks import AckBatch, ProduceFailed, Record, RecordAck, RecordOutcome
from chargewire.kafka.clusters import ClientSettings, ClusterConfig
from chargewire.kafka.connector import BrokerRoute

logger = logging.getLogger(__name__)

_POLL_INTERVAL_S = 0.1
_RETIRING_CODES = frozenset({KafkaError._AUTHENTICATION, KafkaError._SSL, KafkaError._ALL_BROKERS_DOWN})
# How telling a connection error is: a later, vaguer report ("1/1 brokers are down") never hides the reason.
_CAUSE_RANK = {
    KafkaError._AUTHENTICATION: 3,
    KafkaError._SSL: 2,
    KafkaError._TRANSPORT: 1,
    KafkaError._RESOLVE: 1,
    KafkaError._ALL_BROKERS_DOWN: 0,
}


class ClusterProducer:
    """One librdkafka producer, the thread that polls it, and the state the event loop keeps about it.

    Everything but the poll thread's own fields is read and written on the event loop only: the thread
    passes its reports over with `call_soon_threadsafe`, one list per poll.
    """

    def __init__(
        self,
        cluster: ClusterConfig,
        settings: ClientSettings,
        route: BrokerRoute,
        loop: asyncio.AbstractEventLoop,
        on_retire: Callable[[ClusterProducer], None],
    ) -> None:
        self.cluster = cluster
        self.route = route
        self._pending: set[AckBatch] = set()
        self.last_used = time.monotonic()
        self.cause: KafkaError | None = None
        self.retired = False
        self.retirement: asyncio.Future[None] = loop.create_future()  # done once retired
        self.closed: asyncio.Future[None] = loop.create_future()
        self._loop = loop
        self._on_retire = on_retire
        self._reports: list[_Report] = []  # poll thread only
        self._stop = threading.Event()
        self._flush_timeout_s = 0.0
        # Held by a metadata request in a worker thread, so the poll thread never frees the handle under it.
        self._handle_lock = threading.Lock()
        self._handle_closed = False
        self._producer = Producer({**settings, "error_cb": self._error_reported, "logger": logger})
        self._thread = threading.Thread(target=self._serve, name="chargewire-kafka-poll", daemon=True)
        self._thread.start()

    def produce(
        self, topic: str, records: Sequence[Record], start: int
    ) -> tuple[asyncio.Future[list[RecordOutcome]], int]:
        """Queue `records[start:]` until librdkafka's queue fills; returns the answers' future and where it stopped."""
        batch = AckBatch(len(records) - start, self._loop)
        produce = self._producer.produce
        index = start
        try:
            for index in range(start, len(records)):
                record = records[index]
                on_delivery = functools.partial(self._delivered, batch, index - start)
                try:
                    produce(topic, value=record.value, key=record.key, headers=record.headers, on_delivery=on_delivery)
                except KafkaException as exc:
                    batch.settle(index - start, self.failed(exc.args[0]))
            index = len(records)
        except BufferError:
            batch.truncate(index - start)
        if not batch.answered:
            self._pending.add(batch)
        self.last_used = time.monotonic()
        return batch.future, index

    def advertised_brokers(self, topic: str, timeout_s: float) -> tuple[str, ...] | None:
        """The brokers the cluster's metadata names, or None without an answer in `timeout_s` (blocks: any thread)."""
        with self._handle_lock:
            if self._handle_closed:
                return None
            try:
                metadata = self._producer.list_topics(topic, timeout=timeout_s)
            except KafkaException:
                return None
        return tuple(self.route.broker_behind(f"{broker.host}:{broker.port}") for broker in metadata.brokers.values())

    def failed(self, error: KafkaError) -> ProduceFailed:
        """The failure of a record that librdkafka answered with `error`, explained as well as is known now."""
        return ProduceFailed(error, self.cause, self.route.failure)

    @property
    def closing(self) -> bool:
        """True once asked to close: it takes no more requests."""
        return self._stop.is_set()

    @property
    def idle(self) -> bool:
        """True when every record handed to librdkafka has been answered."""
        return not self._pending

    def close(self, flush_timeout_s: float) -> None:
        """Ask the poll thread to flush (up to `flush_timeout_s`), drop what is left, and close the producer."""
        if not self._stop.is_set():
            self._flush_timeout_s = flush_timeout_s
            self._stop.set()

    def join(self) -> None:
        """Wait for the poll thread, which has ended or is about to once `closed` is done."""
        self._thread.join(timeout=5.0)

    # --- poll thread -------------------------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            while not self._stop.is_set():
                self._producer.poll(_POLL_INTERVAL_S)
                self._hand_over()
            if self._producer.flush(self._flush_timeout_s) > 0:
                # Still unacknowledged after the flush: fail them (callbacks with _PURGE_*) rather than hang.
                self._producer.purge()
                self._producer.flush(1.0)
            with self._handle_lock:
                self._producer.close()
                self._handle_closed = True
            self._hand_over()
        finally:
            self._call_in_loop(self._finish_close)

    def _delivered(self, batch: AckBatch, index: int, error: KafkaError | None, message: Message) -> None:
        # A plain tuple: this runs once per record, holding the GIL the event loop is waiting for.
        ack = None if error is not None else RecordAck(message.partition() or 0, message.offset() or 0)
        self._reports.append((batch, index, error, ack))

    def _error_reported(self, error: KafkaError) -> None:
        self._reports.append(error)

    def _hand_over(self) -> None:
        if self._reports:
            reports, self._reports = self._reports, []
            self._call_in_loop(functools.partial(self._take_reports, reports))

    def _call_in_loop(self, callback: Callable[[], None]) -> None:
        # The loop may be gone when a producer is abandoned without aclose; its results then have no reader.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback)

    # --- event loop ----------------------------------------------------------------------------------------

    def _take_reports(self, reports: list[_Report]) -> None:
        """Apply one poll's reports in the order librdkafka made them: connection errors and records' outcomes."""
        for report in reports:
            if isinstance(report, KafkaError):
                self._note_error(self._named(report))
            else:
                self._settle(*report)

    def _settle(self, batch: AckBatch, index: int, error: KafkaError | None, ack: RecordAck | None) -> None:
        if error is None and ack is not None:
            self.cause = None
            batch.settle(index, ack)
        else:
            batch.settle(index, self.failed(self._named(error or KafkaError(KafkaError._FAIL))))
            if error is not None and error.code() == KafkaError._MSG_TIMED_OUT and not self.retired:
                # The idempotent producer goes on after a timed-out record: what is queued behind it for the same
                # partition could land before its retry. Retired, its queue fails too, and goes after it (issue 24).
                self._retire(error)
        if batch.answered:
            self._pending.discard(batch)
        if self.retired and self.idle:
            self.close(0.0)

    def _named(self, error: KafkaError) -> KafkaError:
        """`error` with the brokers named as configured, not as the loopback listeners librdkafka dialled."""
        text = error.str()
        unmasked = self.route.unmask(text)
        if unmasked == text:
            return error
        return KafkaError(error.code(), unmasked, fatal=error.fatal(), retriable=error.retriable())

    def _note_error(self, error: KafkaError) -> None:
        code = error.code()
        rank = _CAUSE_RANK.get(code)
        if rank is not None and (self.cause is None or rank >= _CAUSE_RANK.get(self.cause.code(), 0)):
            self.cause = error
        if (code in _RETIRING_CODES or error.fatal()) and not self.retired:
            self._retire(error)

    def _retire(self, error: KafkaError) -> None:
        logger.warning("Kafka producer for %s retired: %s", self.cluster.label, error.str())
        self.retired = True
        self.retirement.set_result(None)
        self._on_retire(self)
        if self._stop.is_set():
            return  # already closing (idle, or the pool's aclose): the poll thread owns the producer now
        # Unsent records fail now with the cause; records on the wire still get their broker's answer.
        self._producer.purge(in_queue=True, in_flight=False, blocking=False)
        if self.idle:
            self.close(0.0)

    def _finish_close(self) -> None:
        # Every record gets an answer, even if the poll thread died: nobody awaits a future forever.
        pending, self._pending = self._pending, set()
        for batch in pending:
            batch.fail_unanswered(self.failed(KafkaError(KafkaError._DESTROY, "the producer closed")))
        self.route.close()
        if not self.closed.done():
            self.closed.set_result(None)


# What the poll thread hands the event loop: a record's outcome (its batch, its index there, librdkafka's error
# or the broker's ack), or an error librdkafka reported about the connection.
_Report = tuple[AckBatch, int, KafkaError | None, RecordAck | None] | KafkaError
