"""The Kafka channel against a real broker: every security protocol and codec, keys, headers, order, fast and
clear failures, the address guard on bootstrap and advertised brokers, isolation between clusters, shared
producers, and a broker restart in the middle of a run."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import os
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from standardwebhooks.webhooks import Webhook

from chargewire.channels.address_guard import IPNetwork
from chargewire.channels.base import AttemptResult, OutboundMessage
from chargewire.devtools.certificates import generate_tls_files
from chargewire.devtools.kafka_broker import MECHANISMS, PROTOCOLS, KafkaBroker, pick_ports
from chargewire.errors import PermanentDeliveryError, RetryableDeliveryError
from chargewire.ids import new_id
from chargewire.kafka.channel import KafkaChannel
from chargewire.kafka.producers import KafkaProducers
from chargewire.models import KafkaSecrets, KafkaTarget, Subscription, Via

pytestmark = pytest.mark.timeout(240)

MESSAGE_TIMEOUT_S = 10.0
FAIL_FAST_MS = 5_000  # a clear failure ends within half the 10 s message timeout (measured: 0.001-2.6 s)
SIGNING_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
# The test broker listens on 127.0.0.1, which the address guard blocks unless allowed, as the test settings do.
LOOPBACK: list[IPNetwork] = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
# Admits the broker's bootstrap addresses but not 127.0.0.2, where its REDIRECT listener's metadata points.
ONLY_127_0_0_1: list[IPNetwork] = [ipaddress.ip_network("127.0.0.1/32")]
SCENARIOS = [
    ("PLAINTEXT", None),
    *[("SASL_PLAINTEXT", mechanism) for mechanism in MECHANISMS],
    ("SSL", None),
    ("MTLS", None),
    *[("SASL_SSL", mechanism) for mechanism in MECHANISMS],
]


class SecretsBook:
    """What `SubscriptionStore.kafka_secrets` answers, kept in a dict."""

    def __init__(self) -> None:
        self.secrets: dict[str, KafkaSecrets] = {}

    async def __call__(self, subscription_id: str) -> KafkaSecrets | None:
        return self.secrets.get(subscription_id)


@pytest.fixture
def broker(kafka_broker: KafkaBroker) -> KafkaBroker:
    """The run's real broker."""
    return kafka_broker


@pytest.fixture
def book() -> SecretsBook:
    """The secret halves of the test's subscriptions."""
    return SecretsBook()


@pytest.fixture
async def channel(book: SecretsBook) -> AsyncIterator[KafkaChannel]:
    """A channel with a 10 s message timeout, closed after the test."""
    opened = KafkaChannel(book, producers=KafkaProducers(message_timeout_s=MESSAGE_TIMEOUT_S), allow_networks=LOOPBACK)
    yield opened
    await opened.aclose()


def topic_factory(broker: KafkaBroker, label: str, partitions: int = 3) -> str:
    """A new topic with a unique name."""
    name = f"channel-{label}-{uuid.uuid4().hex[:8]}"
    broker.create_topic(name, partitions=partitions)
    return name


def subscription_factory(
    broker: KafkaBroker,
    book: SecretsBook,
    topic: str,
    scenario: str = "PLAINTEXT",
    mechanism: str | None = None,
    *,
    password: str | None = None,
    **target_fields: object,
) -> Subscription:
    """A Kafka subscription on the broker's `scenario` listener, its secrets stored in `book`."""
    protocol = PROTOCOLS[scenario]
    username = broker.credentials[mechanism][0] if mechanism else None
    tls = protocol.endswith("SSL")
    target = KafkaTarget(
        topic=topic,
        brokers=(broker.bootstrap(scenario),),
        security_protocol=protocol,
        sasl_mechanism=mechanism,
        sasl_username=username,
        ca_certificate=broker.tls.ca_pem.read_text() if tls else None,
        client_certificate=broker.tls.client_cert_pem.read_text() if scenario == "MTLS" else None,
    )
    target = replace(target, **target_fields)  # type: ignore[arg-type]
    now = datetime.now(UTC)
    subscription = Subscription(
        id=new_id("sub"),
        via=Via.KAFKA,
        notifications=("SessionUpdateNotification",),
        token_id=new_id("tok"),
        api_version=2,
        created_at=now,
        updated_at=now,
        kafka=target,
    )
    book.secrets[subscription.id] = KafkaSecrets(
        sasl_password=password or (broker.credentials[mechanism][1] if mechanism else None),
        client_key=broker.tls.client_key_pem.read_text() if scenario == "MTLS" else None,
    )
    return subscription


def message_factory(
    subscription: Subscription, *, entity_id: str | None = "4127", sequence: int = 0, size: int | None = None
) -> OutboundMessage:
    """One attempt at a `SessionUpdateNotification` for `subscription`."""
    body = {"notification": "SessionUpdateNotification", "session": {"id": entity_id, "sequence": sequence}}
    if size is not None:
        body["padding"] = "x" * size
    return OutboundMessage(
        delivery_id=new_id("dlv"),
        event_id=new_id("evt"),
        event_name="SessionUpdateNotification",
        payload=json.dumps(body, separators=(",", ":")).encode(),
        entity_id=entity_id,
        subscription=subscription,
        attempt_number=1,
        tenant="test-tenant",
        token_text="token-text-that-created-the-subscription",
        signing_secrets=(SIGNING_SECRET,),
    )


def consume_all(broker: KafkaBroker, topic: str) -> list[Message]:
    """Every record in `topic`, read over the PLAINTEXT listener up to the high watermark of each partition."""
    consumer = Consumer(
        {**broker.client_config("PLAINTEXT"), "group.id": f"test-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        expected = sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: list[Message] = []
        deadline = time.monotonic() + 30
        while len(records) < expected and time.monotonic() < deadline:
            record = consumer.poll(0.5)
            if record is not None:
                assert record.error() is None, record.error()
                records.append(record)
        assert len(records) == expected
        return records
    finally:
        consumer.close()


def record_headers(result: AttemptResult) -> list[tuple[str, bytes]]:
    """The headers the record should carry: what the attempt log shows, minus the `kafka-*` entries."""
    return [(k, v.encode()) for k, v in result.request_headers.items() if not k.startswith("kafka-")]


def headers_of(record: Message) -> dict[str, str]:
    """A consumed record's headers as text."""
    raw = record.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return {name: value.decode() for name, value in pairs if isinstance(value, bytes)}


async def eventually(condition: Callable[[], bool], within_s: float) -> bool:
    """Whether `condition` holds within `within_s`, checked every 50 ms."""
    for _ in range(int(within_s / 0.05)):
        if condition():
            return True
        await asyncio.sleep(0.05)
    return condition()


def error_class(result: AttemptResult) -> str | None:
    """The attempt's error class, or None when it succeeded."""
    return None if result.error is None else result.error.error_class


def librdkafka_thread_count() -> int:
    """Threads of this process that librdkafka started: it names them all `rdk:...`."""
    return sum(thread_name(task).startswith("rdk:") for task in os.listdir("/proc/self/task"))


def thread_name(task: str) -> str:
    """The kernel's name of one thread of this process; empty when it ended meanwhile."""
    try:
        return Path("/proc/self/task", task, "comm").read_text()
    except FileNotFoundError:
        return ""


@pytest.mark.parametrize(("scenario", "mechanism"), SCENARIOS)
async def test_kafka_channel_delivers_each_record_once_with_key_headers_and_value(
    broker: KafkaBroker, book: SecretsBook, channel: KafkaChannel, scenario: str, mechanism: str | None
) -> None:
    topic = await asyncio.to_thread(topic_factory, broker, scenario.lower())
    subscription = subscription_factory(broker, book, topic, scenario, mechanism)
    messages = [message_factory(subscription, entity_id="4127"), message_factory(subscription, entity_id=None)]

    results = [await channel.send(message) for message in messages]

    assert [error_class(result) for result in results] == [None, None], [r.error for r in results]
    records = await asyncio.to_thread(consume_all, broker, topic)
    by_id = {headers_of(record)["webhook-id"]: record for record in records}
    assert len(records) == len(by_id) == 2
    for message, result in zip(messages, results, strict=True):
        record = by_id[message.delivery_id]
        assert record.value() == message.payload
        assert record.key() == (message.entity_id or message.delivery_id).encode()
        assert record.headers() == record_headers(result)
        assert result.request_headers["kafka-topic"] == topic
        assert result.request_headers["kafka-key"] == (message.entity_id or message.delivery_id)
        assert result.response_headers == {
            "kafka-partition": str(record.partition()),
            "kafka-offset": str(record.offset()),
        }
        headers = headers_of(record)
        assert headers["notification"] == "SessionUpdateNotification"
        assert headers["X-Tenant"] == "test-tenant"
        expected_signature = hmac.new(message.token_text.encode(), message.payload, hashlib.sha256).hexdigest()
        assert headers["X-Signature"] == expected_signature
        Webhook(SIGNING_SECRET).verify(message.payload, headers)


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4"])
async def test_kafka_channel_delivers_with_every_compression_codec(
    broker: KafkaBroker, book: SecretsBook, channel: KafkaChannel, codec: str
) -> None:
    topic = await asyncio.to_thread(topic_factory, broker, f"codec-{codec}")
    subscription = subscription_factory(broker, book, topic, compression_codec=codec)
    messages = [message_factory(subscription, sequence=n, size=2_000) for n in range(20)]

    results = await asyncio.gather(*(channel.send(message) for message in messages))

    assert {error_class(result) for result in results} == {None}
    assert [cluster.compression_codec for cluster in channel.producers.clusters] == [codec]
    records = await asyncio.to_thread(consume_all, broker, topic)
    assert sorted(record.value() or b"" for record in records) == sorted(m.payload for m in messages)


async def test_kafka_channel_keeps_the_order_of_each_key(
    broker: KafkaBroker, book: SecretsBook, channel: KafkaChannel
) -> None:
    topic = await asyncio.to_thread(topic_factory, broker, "order", 6)
    subscription = subscription_factory(broker, book, topic, "SASL_PLAINTEXT", "SCRAM-SHA-256")
    messages = [message_factory(subscription, entity_id=f"cp-{n % 10}", sequence=n) for n in range(200)]

    results = await asyncio.gather(*(channel.send(message) for message in messages))

    assert {error_class(result) for result in results} == {None}
    records = await asyncio.to_thread(consume_all, broker, topic)
    assert len(records) == 200
    sequences: dict[bytes, list[int]] = defaultdict(list)
    partitions: dict[bytes, set[int | None]] = defaultdict(set)
    for record in sorted(records, key=lambda r: (r.partition() or 0, r.offset() or 0)):
        key = record.key() or b""
        sequences[key].append(json.loads(record.value() or b"")["session"]["sequence"])
        partitions[key].add(record.partition())
    assert len(sequences) == 10
    for key, seen in sequences.items():
        assert seen == sorted(seen), key
        assert len(seen) == 20, key
        assert len(partitions[key]) == 1


@pytest.mark.parametrize("scenario", ["SASL_PLAINTEXT", "SASL_SSL"])
@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_wrong_password_fails_as_authentication_within_seconds(
    broker: KafkaBroker, book: SecretsBook, channel: KafkaChannel, scenario: str, mechanism: str
) -> None:
    topic = await asyncio.to_thread(topic_factory, broker, "wrong-password", 1)
    subscription = subscription_factory(broker, book, topic, scenario, mechanism, password="not-the-password")

    results = [await channel.send(message_factory(subscription)) for _ in range(2)]

    for result in results:
        assert isinstance(result.error, RetryableDeliveryError)
        assert result.error.error_class == "authentication", result.error.message
        assert result.duration_ms < FAIL_FAST_MS < MESSAGE_TIMEOUT_S * 1000
    assert await asyncio.to_thread(consume_all, broker, topic) == []


async def test_unknown_topic_fails_as_unknown_topic_within_seconds(
    broker: KafkaBroker, book: SecretsBook, channel: KafkaChannel
) -> None:
    subscription = subscription_factory(broker, book, f"missing-{uuid.uuid4().hex[:8]}")

    result = await channel.send(message_factory(subscription))

    assert isinstance(result.error, RetryableDeliveryError)
    assert result.error.error_class == "unknown_topic", result.error.message
    assert result.duration_ms < FAIL_FAST_MS


async def test_unreachable_brokers_fail_as_unreachable_within_seconds(
    broker: KafkaBroker, book: SecretsBook, channel: KafkaChannel
) -> None:
    closed_port = pick_ports(1)[0]
    subscription = subscription_factory(broker, book, "anything", brokers=(f"127.0.0.1:{closed_port}",))

    result = await channel.send(message_factory(subscription))

    assert isinstance(result.error, RetryableDeliveryError)
    assert result.error.error_class == "unreachable", result.error.message
    # Neither the address connected to nor how the port answered: that would make deliveries a port scanner.
    assert result.error.message == "No broker could be reached."
    assert result.duration_ms < FAIL_FAST_MS


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_broker_on_a_blocked_address_fails_as_blocked_address_without_opening_a_producer(
    broker: KafkaBroker, book: SecretsBook, host: str
) -> None:
    channel = KafkaChannel(book, producers=KafkaProducers(message_timeout_s=MESSAGE_TIMEOUT_S))
    topic = await asyncio.to_thread(topic_factory, broker, "blocked", 1)
    port = broker.bootstrap("PLAINTEXT").rpartition(":")[2]
    subscription = subscription_factory(broker, book, topic, brokers=(f"{host}:{port}",))
    try:
        results = [await channel.send(message_factory(subscription)) for _ in range(2)]

        assert channel.producers.clusters == ()
    finally:
        await channel.aclose()
    for result in results:
        assert isinstance(result.error, PermanentDeliveryError)
        assert result.error.error_class == "blocked_address"
        # An address given is named with its range; what a name resolves to is never said.
        expected = "127.0.0.1: loopback" if host == "127.0.0.1" else "localhost resolves to a blocked address"
        assert expected in result.error.message
        assert host == "127.0.0.1" or "127.0.0.1" not in result.error.message
        assert result.duration_ms < 1_000
    assert await asyncio.to_thread(consume_all, broker, topic) == []


async def test_a_cluster_advertising_a_blocked_broker_fails_as_blocked_address_and_produces_nothing(
    broker: KafkaBroker, book: SecretsBook
) -> None:
    # The bootstrap address, 127.0.0.1, is allowed; the broker the cluster advertises, on 127.0.0.2, is not.
    channel = KafkaChannel(
        book, producers=KafkaProducers(message_timeout_s=MESSAGE_TIMEOUT_S), allow_networks=ONLY_127_0_0_1
    )
    topic = await asyncio.to_thread(topic_factory, broker, "advertised-blocked", 1)
    subscriptions = [
        subscription_factory(broker, book, topic, brokers=(broker.redirecting_bootstrap(),)) for _ in range(2)
    ]
    try:
        # Two subscriptions of the one cluster at once, then again once its verdict is known.
        first = await asyncio.gather(
            *(channel.send_batch([message_factory(s, sequence=n) for n in range(3)]) for s in subscriptions)
        )
        again = await channel.send(message_factory(subscriptions[0]))
        # Its producer is closed with the refusal, so librdkafka makes no more connections to that cluster.
        assert channel.producers.clusters == ()
    finally:
        await channel.aclose()

    results = [result for batch in first for result in batch] + [again]
    assert len(results) == 7
    for result in results:
        assert isinstance(result.error, PermanentDeliveryError)
        assert result.error.error_class == "blocked_address"
        assert f"advertises a broker at a blocked address, {broker.redirected_address()}" in result.error.message
        assert result.duration_ms < FAIL_FAST_MS
    assert await asyncio.to_thread(consume_all, broker, topic) == []


@pytest.mark.parametrize(
    ("listener", "allow"),
    [("redirecting", LOOPBACK), ("plaintext", ONLY_127_0_0_1)],
    ids=["advertised-127.0.0.2-allowed-by-127/8", "advertised-127.0.0.1-allowed-by-127.0.0.1/32"],
)
async def test_a_cluster_whose_advertised_brokers_are_allowed_delivers(
    broker: KafkaBroker, book: SecretsBook, listener: str, allow: list[IPNetwork]
) -> None:
    channel = KafkaChannel(book, producers=KafkaProducers(message_timeout_s=MESSAGE_TIMEOUT_S), allow_networks=allow)
    topic = await asyncio.to_thread(topic_factory, broker, f"advertised-{listener}", 1)
    bootstrap = broker.redirecting_bootstrap() if listener == "redirecting" else broker.bootstrap("PLAINTEXT")
    subscription = subscription_factory(broker, book, topic, brokers=(bootstrap,))
    messages = [message_factory(subscription, sequence=n) for n in range(3)]
    try:
        results = await channel.send_batch(messages) + [await channel.send(message_factory(subscription))]
    finally:
        await channel.aclose()

    assert [error_class(result) for result in results] == [None] * 4, [r.error for r in results]
    records = await asyncio.to_thread(consume_all, broker, topic)
    assert len(records) == 4


async def test_a_broker_name_that_does_not_resolve_fails_closed_as_unreachable_without_opening_a_producer(
    broker: KafkaBroker, book: SecretsBook
) -> None:
    channel = KafkaChannel(book, producers=KafkaProducers(message_timeout_s=MESSAGE_TIMEOUT_S))
    subscription = subscription_factory(broker, book, "anything", brokers=("broker.invalid:9092",))
    try:
        result = await channel.send(message_factory(subscription))
        assert channel.producers.clusters == ()
    finally:
        await channel.aclose()

    assert isinstance(result.error, RetryableDeliveryError)
    assert result.error.error_class == "unreachable", result.error.message
    assert result.duration_ms < FAIL_FAST_MS


async def test_untrusted_broker_certificate_and_missing_client_certificate_fail_as_tls(
    broker: KafkaBroker, book: SecretsBook, channel: KafkaChannel, tmp_path: Path
) -> None:
    stranger = generate_tls_files(tmp_path, "another CA")
    wrong_ca = subscription_factory(broker, book, "anything", "SSL", ca_certificate=stranger.ca_pem.read_text())
    no_client_cert = subscription_factory(broker, book, "anything", "MTLS", client_certificate=None)
    book.secrets[no_client_cert.id] = KafkaSecrets()

    results = [await channel.send(message_factory(wrong_ca)), await channel.send(message_factory(no_client_cert))]

    assert [error_class(result) for result in results] == ["tls", "tls"], [r.error for r in results]
    assert all(result.duration_ms < FAIL_FAST_MS for result in results)


async def test_a_record_too_large_fails_permanently(
    broker: KafkaBroker, book: SecretsBook, channel: KafkaChannel
) -> None:
    topic = await asyncio.to_thread(topic_factory, broker, "too-large", 1)
    subscription = subscription_factory(broker, book, topic, compression_codec="none")

    result = await channel.send(message_factory(subscription, size=2_000_000))

    assert isinstance(result.error, PermanentDeliveryError)
    assert result.error.error_class == "message_too_large"


async def test_wrong_credentials_do_not_hold_up_another_subscription(
    broker: KafkaBroker, book: SecretsBook, channel: KafkaChannel
) -> None:
    topic = await asyncio.to_thread(topic_factory, broker, "isolation")
    bad = subscription_factory(broker, book, topic, "SASL_SSL", "PLAIN", password="not-the-password")
    good = subscription_factory(broker, book, topic, "SASL_SSL", "SCRAM-SHA-512")
    good_done = asyncio.Event()
    bad_results: list[AttemptResult] = []

    async def keep_failing() -> None:
        # Retries of the bad subscription go on for as long as the good one is sending.
        while not good_done.is_set():
            bad_results.extend(await asyncio.gather(*(channel.send(message_factory(bad)) for _ in range(10))))

    async def send_good() -> list[AttemptResult]:
        await asyncio.sleep(0.05)  # let the bad subscription's first attempts get under way
        try:
            return list(await asyncio.gather(*(channel.send(message_factory(good, sequence=n)) for n in range(100))))
        finally:
            good_done.set()

    failing = asyncio.create_task(keep_failing())
    good_results = await send_good()
    await failing

    assert {error_class(result) for result in good_results} == {None}
    assert max(result.duration_ms for result in good_results) < FAIL_FAST_MS
    assert bad_results
    assert {error_class(result) for result in bad_results} == {"authentication"}
    records = await asyncio.to_thread(consume_all, broker, topic)
    assert len(records) == 100


async def test_producers_are_shared_per_cluster_and_closed_on_aclose(broker: KafkaBroker, book: SecretsBook) -> None:
    topic = await asyncio.to_thread(topic_factory, broker, "shared")
    threads_before = librdkafka_thread_count()
    channel = KafkaChannel(book, allow_networks=LOOPBACK)
    first = subscription_factory(broker, book, topic, "SASL_PLAINTEXT", "PLAIN")
    second = subscription_factory(broker, book, topic, "SASL_PLAINTEXT", "PLAIN")
    other_codec = subscription_factory(broker, book, topic, "SASL_PLAINTEXT", "PLAIN", compression_codec="lz4")

    results = await asyncio.gather(*(channel.send(message_factory(s)) for s in (first, second, other_codec)))

    assert {error_class(result) for result in results} == {None}
    assert sorted(cluster.compression_codec for cluster in channel.producers.clusters) == ["gzip", "lz4"]
    assert channel.producers.live_count == 2
    assert librdkafka_thread_count() > threads_before
    assert [t.name for t in threading.enumerate()].count("chargewire-kafka-poll") == 2
    await channel.aclose()
    assert channel.producers.live_count == 0
    assert "chargewire-kafka-poll" not in [t.name for t in threading.enumerate()]
    assert librdkafka_thread_count() <= threads_before


async def test_an_idle_producer_is_closed_and_reopened_on_demand(broker: KafkaBroker, book: SecretsBook) -> None:
    channel = KafkaChannel(book, producers=KafkaProducers(idle_close_s=0.4), allow_networks=LOOPBACK)
    topic = await asyncio.to_thread(topic_factory, broker, "idle")
    subscription = subscription_factory(broker, book, topic)
    try:
        assert (await channel.send(message_factory(subscription))).succeeded
        assert await eventually(lambda: channel.producers.live_count == 0, within_s=5)
        assert (await channel.send(message_factory(subscription))).succeeded
        assert channel.producers.live_count == 1
    finally:
        await channel.aclose()


async def test_a_broker_restart_loses_nothing_and_deliveries_resume(
    broker: KafkaBroker, book: SecretsBook, channel: KafkaChannel
) -> None:
    # Runs last in the module: it stops and starts the shared broker. The only restart of the broker harness's own
    # (tests/integration/kafka/test_kafka_broker_harness.py): its ports, topics and records survive it, as checked here.
    topic = await asyncio.to_thread(topic_factory, broker, "restart")
    subscription = subscription_factory(broker, book, topic, "SASL_SSL", "SCRAM-SHA-256")
    addresses = {protocol: broker.bootstrap(protocol) for protocol in PROTOCOLS}
    messages = [message_factory(subscription, entity_id=f"cp-{n % 5}", sequence=n) for n in range(300)]
    failures: Counter[str | None] = Counter()
    retried: set[str] = set()
    written: list[str] = []
    restarted = asyncio.Event()

    async def deliver(message: OutboundMessage) -> None:
        # A compressed retry schedule: the dispatcher would wait seconds to hours between these attempts.
        while not (result := await channel.send(message)).succeeded:
            failures[error_class(result)] += 1
            retried.add(message.delivery_id)
            await asyncio.sleep(0.5)
        written.append(message.delivery_id)

    async def deliver_slowly() -> None:
        # Paced until the broker is back, so that the stop lands in the stream; the rest go out as fast as acked.
        for message in messages:
            await deliver(message)
            if not restarted.is_set():
                await asyncio.sleep(0.02)

    sending = asyncio.create_task(deliver_slowly())
    # Some records written before the stop (the first send connects over SASL_SSL: 1 s was not always enough).
    assert await eventually(lambda: len(written) >= 20, within_s=30), "fewer than 20 records written in 30 s"
    await asyncio.to_thread(broker.stop)
    assert not broker.running
    await asyncio.sleep(1.0)
    await asyncio.to_thread(broker.start)
    restarted.set()
    assert {protocol: broker.bootstrap(protocol) for protocol in PROTOCOLS} == addresses
    await asyncio.wait_for(sending, 120)

    assert failures, "the broker was down for a while, yet no attempt failed"
    assert set(failures) <= {"unreachable", "timeout"}, failures
    records = await asyncio.to_thread(consume_all, broker, topic)
    delivered = Counter(headers_of(record)["webhook-id"] for record in records)
    assert set(delivered) == {message.delivery_id for message in messages}
    # At least once: only a record whose attempt timed out on the wire may have been written twice.
    assert {delivery_id for delivery_id, count in delivered.items() if count > 1} <= retried


async def test_a_batch_is_written_in_order_with_one_result_per_message(
    broker: KafkaBroker, book: SecretsBook, channel: KafkaChannel
) -> None:
    topic = await asyncio.to_thread(topic_factory, broker, "batch", 1)
    subscription = subscription_factory(broker, book, topic)
    messages = [message_factory(subscription, entity_id=f"cp-{n % 3}", sequence=n) for n in range(300)]

    results = await channel.send_batch(messages)

    assert [error_class(result) for result in results] == [None] * 300
    records = await asyncio.to_thread(consume_all, broker, topic)
    assert [headers_of(record)["webhook-id"] for record in records] == [m.delivery_id for m in messages]
    for message, result, record in zip(messages, results, records, strict=True):
        assert result.response_headers == {"kafka-partition": "0", "kafka-offset": str(record.offset())}
        assert result.request_headers["webhook-id"] == message.delivery_id


async def test_batches_sent_one_after_the_other_are_written_in_that_order(
    broker: KafkaBroker, book: SecretsBook, channel: KafkaChannel
) -> None:
    topic = await asyncio.to_thread(topic_factory, broker, "batches", 1)
    subscription = subscription_factory(broker, book, topic)
    messages = [message_factory(subscription, entity_id="cp-1", sequence=n) for n in range(1500)]
    batches = [messages[:600], messages[600:1200], messages[1200:]]

    await asyncio.gather(*(channel.send_batch(batch) for batch in batches))

    records = await asyncio.to_thread(consume_all, broker, topic)
    assert [headers_of(record)["webhook-id"] for record in records] == [m.delivery_id for m in messages]


async def test_a_record_refused_in_a_batch_fails_alone(
    broker: KafkaBroker, book: SecretsBook, channel: KafkaChannel
) -> None:
    topic = await asyncio.to_thread(topic_factory, broker, "batch-refused", 1)
    subscription = subscription_factory(broker, book, topic, compression_codec="none")
    messages = [message_factory(subscription, sequence=n) for n in range(5)]
    messages[2] = message_factory(subscription, sequence=2, size=2_000_000)
    messages[3] = replace(messages[3], signing_secrets=("whsec_not*base64",))

    results = await channel.send_batch(messages)

    assert [error_class(result) for result in results] == [None, None, "message_too_large", "signing", None]
    records = await asyncio.to_thread(consume_all, broker, topic)
    assert [headers_of(record)["webhook-id"] for record in records] == [messages[i].delivery_id for i in (0, 1, 4)]


async def test_a_batch_larger_than_the_producer_queue_waits_for_room_and_loses_nothing(
    broker: KafkaBroker, book: SecretsBook
) -> None:
    small_queue = KafkaProducers(
        message_timeout_s=MESSAGE_TIMEOUT_S, extra_settings={"queue.buffering.max.messages": 50}
    )
    channel = KafkaChannel(book, producers=small_queue, allow_networks=LOOPBACK)
    topic = await asyncio.to_thread(topic_factory, broker, "batch-queue-full", 1)
    subscription = subscription_factory(broker, book, topic)
    messages = [message_factory(subscription, sequence=n) for n in range(400)]
    try:
        results = await channel.send_batch(messages)
    finally:
        await channel.aclose()

    assert [error_class(result) for result in results] == [None] * 400
    records = await asyncio.to_thread(consume_all, broker, topic)
    assert [headers_of(record)["webhook-id"] for record in records] == [m.delivery_id for m in messages]
