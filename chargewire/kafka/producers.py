"""Kafka producers shared per cluster configuration, with asyncio futures for the broker's acknowledgements.

One librdkafka `Producer` serves every subscription with the same `ClusterConfig` (brokers, security
settings, credentials, compression). Records are handed over in batches, each answered by one future
(`acks`). Each producer has a thread that polls it and hands the delivery reports to the event loop, many per
loop callback.

librdkafka never gives up on a cluster by itself: bad credentials, a dead address or a TLS mismatch only
surface as `error_cb` reports, while the records wait out `message.timeout.ms`. So when `error_cb` reports
`_AUTHENTICATION`, `_SSL`, `_ALL_BROKERS_DOWN` or a fatal error, the producer is retired at once: its
queued (never sent) records are purged and fail with that error as their `cause`, new records go to a fresh
producer, and the old one closes once the records already on the wire are acknowledged or time out. Only
unsent records are purged, so a record is never reported failed and then written anyway.

librdkafka reaches the brokers only through the guarded connector (`connector`): each producer is opened with
its own `BrokerRoute`, its bootstrap brokers replaced by the route's loopback listeners and its TLS left to the
connector, and the route closes with the producer. A record that fails because no broker could be reached
carries the route's explanation (`ProduceFailed.failure`: a blocked address, a TLS failure), and librdkafka's
error texts name the brokers as configured, not the listeners.

`advertised_brokers` asks a cluster's producer which brokers its metadata names, for the address guard to check
before records go to them. The request blocks, so it runs in a worker thread, in growing steps (no thread is
held longer than one), and the event loop stops waiting for it as soon as the producer retires.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from chargewire.channels.address_guard import IPNetwork
from chargewire.kafka.acks import (
    AckBatch,
    ClusterRefused,
    PendingAcks,
    ProduceFailed,
    Record,
    RecordAck,
    RecordOutcome,
    answered,
)
from chargewire.kafka.clusters import ClientSettings, ClusterConfig
from chargewire.kafka.connector import BrokerRoute, KafkaConnector, shared_connector
from chargewire.kafka.producer_settings import ProducerSettings, tls_context

logger = logging.getLogger(__name__)

_POLL_INTERVAL_S = 0.1
_QUEUE_FULL_WAIT_S = 0.01
_SWEEP_INTERVAL_MAX_S = 30.0
_METADATA_FIRST_WAIT_S = 0.25
# What an unanswered metadata request fails with; the producer's connection error, when it has one, says why.
_NO_METADATA = KafkaError(KafkaError._TIMED_OUT, "the cluster sent no metadata within the connect timeout")
_RETIRING_CODES = frozenset({KafkaError._AUTHENTICATION, KafkaError._SSL, KafkaError._ALL_BROKERS_DOWN})
# How telling a connection error is: a later, vaguer report ("1/1 brokers are down") never hides the reason.
_CAUSE_RANK = {
    KafkaError._AUTHENTICATION: 3,
    KafkaError._SSL: 2,
    KafkaError._TRANSPORT: 1,
    KafkaError._RESOLVE: 1,
    KafkaError._ALL_BROKERS_DOWN: 0,
}


class KafkaProducers:
    """The pool: one producer per `ClusterConfig`, created on first use and closed after `idle_close_s` unused."""

    def __init__(
        self,
        *,
        message_timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        topic_wait_s: float = 2.0,
        idle_close_s: float = 300.0,
        linger_ms: float = 5.0,
        gzip_level: int = 1,
        extra_settings: Mapping[str, str | int | float | bool] | None = None,
        connector: KafkaConnector | None = None,
    ) -> None:
        """Set the limits that bound one attempt.

        Args:
            message_timeout_s: how long a record may wait for the broker's acknowledgement, retries included.
            connect_timeout_s: TCP connect plus TLS and SASL handshakes, per broker connection.
            topic_wait_s: how long a topic the cluster does not know is awaited before the record fails.
            idle_close_s: a producer no record used for this long is flushed and closed.
            linger_ms: how long librdkafka waits to fill a batch before sending it.
            gzip_level: the zlib level of gzip-compressed clusters (1 fastest, 9 smallest).
            extra_settings: librdkafka settings laid over the defaults (e.g. `linger.ms` for benchmarks).
            connector: what librdkafka reaches the brokers through; by default the process's shared one.
        """
        self.connector = connector or shared_connector()
        # Non-public networks brokers may resolve into; the channel sets the operator's allow-list.
        self.allow_networks: tuple[IPNetwork, ...] = ()
        self.message_timeout_s = message_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._idle_close_s = idle_close_s
        self.settings = ProducerSettings(
            message_timeout_s=message_timeout_s,
            connect_timeout_s=connect_timeout_s,
            topic_wait_s=topic_wait_s,
            linger_ms=linger_ms,
            gzip_level=gzip_level,
            extra_settings=extra_settings,
        )
        self._producers: dict[ClusterConfig, _ClusterProducer] = {}
        self._live: set[_ClusterProducer] = set()  # in the pool, or retired and still closing
        self._refused: set[ClusterConfig] = set()  # configurations librdkafka refused, already logged
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def clusters(self) -> tuple[ClusterConfig, ...]:
        """The configurations that have an open producer in the pool."""
        return tuple(self._producers)

    @property
    def live_count(self) -> int:
        """Producers not yet closed, retired ones included."""
        return len(self._live)

    async def enqueue(self, cluster: ClusterConfig, topic: str, records: Sequence[Record]) -> PendingAcks:
        """Hand records to the cluster's producer; returns once librdkafka holds them all.

        Records enqueued one after the other for the same cluster, topic and key are written in that order
        (while one producer serves them: after a retirement, a record still on the wire may land after later ones).
        A record librdkafka refuses outright (too large, invalid settings) is answered with `ProduceFailed` at
        once; while its queue is full, this waits for acknowledgements to make room, up to `message_timeout_s`.
        """
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + self.message_timeout_s
        parts: list[asyncio.Future[list[RecordOutcome]]] = []
        producers: list[_ClusterProducer] = []
        start = 0
        while True:
            producer = self._producer_for(cluster, loop)
            producers.append(producer)
            acks, start = producer.produce(topic, records, start)
            parts.append(acks)
            if start == len(records):
                return PendingAcks(parts, producers)
            # The local queue is full: wait for acknowledgements to make room; dropping is never an option.
            if time.monotonic() >= deadline:
                full = producer.failed(KafkaError(KafkaError._QUEUE_FULL))
                parts.append(answered([full] * (len(records) - start), loop))
                return PendingAcks(parts, producers)
            await asyncio.sleep(_QUEUE_FULL_WAIT_S)

    async def advertised_brokers(self, cluster: ClusterConfig, topic: str) -> tuple[str, ...]:
        """The "host:port" of every broker `cluster`'s metadata names, asked with its producer.

        librdkafka connects sparsely: asking a bootstrap broker connects to none of the brokers it names. This
        gives up after `connect_timeout_s`, or once the producer retires (bad credentials, TLS, all brokers
        down), raising `ProduceFailed` explained by the producer's connection error when it has one: without
        an answer nothing may be produced, as the brokers records would go to are unchecked. Raises
        `ProduceFailed` too when librdkafka refuses the cluster's settings, as `enqueue` would.
        """
        producer = self._producer_for(cluster, asyncio.get_running_loop())
        for wait_s in metadata_waits(self._connect_timeout_s):
            if producer.retired or producer.closing:
                break
            # Used, so the idle sweep does not close it under the request.
            producer.last_used = time.monotonic()
            request = asyncio.ensure_future(asyncio.to_thread(producer.advertised_brokers, topic, wait_s))
            await asyncio.wait((request, producer.retirement), return_when=asyncio.FIRST_COMPLETED)
            if not request.done():
                break  # retired: the request ends within `wait_s` by itself, and answers nobody
            brokers = request.result()
            if brokers is not None:
                return brokers
        raise producer.failed(_NO_METADATA)

    async def aclose(self) -> None:
        """Flush every producer (waiting up to `message_timeout_s`), close them and stop their threads."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        producers, self._producers = list(self._producers.values()), {}
        for producer in producers:
            producer.close(self.message_timeout_s)
        closing = list(self._live)
        await asyncio.gather(*(producer.closed for producer in closing))
        for producer in closing:
            producer.join()

    def _producer_for(self, cluster: ClusterConfig, loop: asyncio.AbstractEventLoop) -> _ClusterProducer:
        existing = self._producers.get(cluster)
        if existing is not None:
            return existing
        try:
            route = self.connector.route(self.allow_networks, tls_context(cluster), self._connect_timeout_s)
            try:
                producer = _ClusterProducer(
                    cluster, self.settings.through_route(route, cluster), route, loop, self._retired
                )
            except BaseException:
                route.close()
                raise
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if cluster not in self._refused:
                # Once per configuration: every attempt of its subscriptions is refused the same way.
                self._refused.add(cluster)
                logger.error("librdkafka refused the settings of Kafka cluster %s: %s", cluster.label, error.str())
            raise ClusterRefused(error) from exc
        self._refused.discard(cluster)
        self._producers[cluster] = producer
        self._live.add(producer)
        producer.closed.add_done_callback(lambda _: self._live.discard(producer))
        logger.info("Kafka producer opened for %s", cluster.label)
        if self._sweeper is None:
            self._sweeper = loop.create_task(self._sweep_idle())
        return producer

    def discard(self, cluster: ClusterConfig) -> None:
        """Close `cluster`'s producer now, failing what it has not sent: the guard refused where it connects."""
        producer = self._producers.get(cluster)
        if producer is not None:
            logger.info("Kafka producer for %s closed: the address guard refused the cluster", cluster.label)
            self._retired(producer)
            producer.close(0.0)

    def _retired(self, producer: _ClusterProducer) -> None:
        if self._producers.get(producer.cluster) is producer:
            del self._producers[producer.cluster]

    async def _sweep_idle(self) -> None:
        interval = min(self._idle_close_s / 2, _SWEEP_INTERVAL_MAX_S)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for producer in list(self._producers.values()):
                if producer.idle and now - producer.last_used >= self._idle_close_s:
                    logger.info(
                        "Kafka producer for %s closed after %.0fs unused", producer.cluster.label, self._idle_close_s
                    )
                    self._retired(producer)
                    producer.close(0.0)


class _ClusterProducer:
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
        on_retire: Callable[[_ClusterProducer], None],
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


def metadata_waits(total_s: float) -> list[float]:
    """How long each metadata request of `advertised_brokers` waits: doubling from 0.25 s, `total_s` in all."""
    waits: list[float] = []
    wait_s = _METADATA_FIRST_WAIT_S
    while sum(waits) + wait_s < total_s:
        waits.append(wait_s)
        wait_s *= 2
    waits.append(round(total_s - sum(waits), 6))
    return [wait for wait in waits if wait > 0]
