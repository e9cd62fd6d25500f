"""Kafka producers shared per cluster configuration, with asyncio futures for the broker's acknowledgements.

One librdkafka `Producer` serves every subscription with the same `ClusterConfig` (brokers, security
settings, credentials, compression). Records are handed over in batches, each answered by one future
(`acks`). Each producer has a thread that polls it and hands the delivery reports to the event loop, many per
loop callback.

librdkafka never gives up on a cluster by itself, so a producer whose connection errors say it never will
retires (`cluster_producer`): new records go to a fresh producer from the pool.

librdkafka reaches the brokers only through the guarded connector (`connector`): each producer is opened with
its own `BrokerRoute`, its bootstrap brokers replaced by the route's loopback listeners and its TLS left to the
connector, and the route closes with the producer.

`advertised_brokers` asks a cluster's producer which brokers its metadata names, for the address guard to check
before records go to them. The request blocks, so it runs in a worker thread, in growing steps (no thread is
held longer than one), and the event loop stops waiting for it as soon as the producer retires.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence

from confluent_kafka import KafkaError, KafkaException

from chargewire.channels.address_guard import IPNetwork
from chargewire.kafka.acks import ClusterRefused, PendingAcks, Record, RecordOutcome, answered
from chargewire.kafka.cluster_producer import ClusterProducer
from chargewire.kafka.clusters import ClusterConfig
from chargewire.kafka.connector import KafkaConnector, shared_connector
from chargewire.kafka.producer_settings import ProducerSettings, tls_context

logger = logging.getLogger(__name__)

_QUEUE_FULL_WAIT_S = 0.01
_SWEEP_INTERVAL_MAX_S = 30.0
_METADATA_FIRST_WAIT_S = 0.25
# What an unanswered metadata request fails with; the producer's connection error, when it has one, says why.
_NO_METADATA = KafkaError(KafkaError._TIMED_OUT, "the cluster sent no metadata within the connect timeout")


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
        self._producers: dict[ClusterConfig, ClusterProducer] = {}
        self._live: set[ClusterProducer] = set()  # in the pool, or retired and still closing
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
        producers: list[ClusterProducer] = []
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

    def _producer_for(self, cluster: ClusterConfig, loop: asyncio.AbstractEventLoop) -> ClusterProducer:
        existing = self._producers.get(cluster)
        if existing is not None:
            return existing
        try:
            route = self.connector.route(self.allow_networks, tls_context(cluster), self._connect_timeout_s)
            try:
                producer = ClusterProducer(
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

    def _retired(self, producer: ClusterProducer) -> None:
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


def metadata_waits(total_s: float) -> list[float]:
    """How long each metadata request of `advertised_brokers` waits: doubling from 0.25 s, `total_s` in all."""
    waits: list[float] = []
    wait_s = _METADATA_FIRST_WAIT_S
    while sum(waits) + wait_s < total_s:
        waits.append(wait_s)
        wait_s *= 2
    waits.append(round(total_s - sum(waits), 6))
    return [wait for wait in waits if wait > 0]
