"""The guarded connector against a real broker and real sockets: librdkafka reaches only addresses chargewire
resolved and checked when it connected, whatever a name pointed at when the attempt was checked."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from chargewire.channels.address_guard import BlockedAddress, IPNetwork, ResolvedAddress, resolve_allowed
from chargewire.devtools.kafka_broker import KafkaBroker
from chargewire.kafka.acks import ProduceFailed, Record
from chargewire.kafka.channel import KafkaChannel
from chargewire.kafka.clusters import ClusterConfig
from chargewire.kafka.connector import KafkaConnector
from chargewire.kafka.producers import KafkaProducers
from chargewire.models import KafkaSecrets, KafkaTarget, Subscription, Via
from tests.support.factories import outbound_message_factory, subscription_factory
from tests.support.kafka_topics import TopicCounter

pytestmark = pytest.mark.timeout(120)

MESSAGE_TIMEOUT_S = 10.0
# Where the pre-check is told `localhost` points: allowed, so only a check at connect time can refuse it.
CHECKED_ADDRESS = "127.0.0.2"
ONLY_CHECKED_ADDRESS: list[IPNetwork] = [ipaddress.ip_network(f"{CHECKED_ADDRESS}/32")]
ONLY_127_0_0_1: list[IPNetwork] = [ipaddress.ip_network("127.0.0.1/32")]
LOOPBACK: list[IPNetwork] = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]


class CountingListener:
    """A TCP port on 127.0.0.1 that accepts connections and counts them: where a rebound name points."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _peer = self._socket.accept()
            except OSError:
                return
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        """Stop accepting."""
        # A close alone does not wake the thread's accept(), and the join waited its whole 5 s; a shutdown does.
        self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
        self._thread.join(timeout=5)


@pytest.fixture
def counting_listener() -> Iterator[CountingListener]:
    """A counting port, closed after the test."""
    listener = CountingListener()
    yield listener
    listener.close()


@pytest.fixture
def rebinding_localhost(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`localhost` resolves to CHECKED_ADDRESS the first time chargewire asks, and to what it really is after.

    librdkafka resolves names in C, out of reach of this patch: before the connector, it dialled the real
    127.0.0.1 after chargewire's check had seen CHECKED_ADDRESS.
    """
    real = socket.getaddrinfo
    answers: list[str] = []

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "localhost" and not answers:
            answers.append(CHECKED_ADDRESS)
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (CHECKED_ADDRESS, int(port)))]
        answers.append("real")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    return answers


async def test_a_broker_name_rebound_to_loopback_after_the_check_gets_no_connection_and_fails_as_blocked_address(
    counting_listener: CountingListener, rebinding_localhost: list[str]
) -> None:
    connector = KafkaConnector()
    producers = KafkaProducers(message_timeout_s=MESSAGE_TIMEOUT_S, connector=connector)
    channel = KafkaChannel(_no_secrets, producers=producers, allow_networks=ONLY_CHECKED_ADDRESS)
    target = KafkaTarget(topic="rebinding", brokers=(f"localhost:{counting_listener.port}",))
    subscription = subscription_factory(via=Via.KAFKA, callback_url=None, kafka=target)
    try:
        results = [await channel.send(outbound_message_factory(subscription)) for _ in range(2)]
    finally:
        await channel.aclose()

    assert rebinding_localhost[0] == CHECKED_ADDRESS  # the pre-check passed on the address it was shown
    assert counting_listener.accepted == 0
    assert connector.counts.refused["blocked_address"] >= 1
    # The first attempt is refused by the connector, which names the broker; the next by the pre-check, which
    # by then sees where the name points. Neither says what it resolved to, nor how the port answered.
    assert results[0].error is not None
    assert f"The broker localhost:{counting_listener.port} is, or resolves to," in results[0].error.message
    for result in results:
        assert result.error is not None
        assert result.error.error_class == "blocked_address", result.error.message
        assert "127.0.0.1" not in result.error.message
        assert "refused" not in result.error.message.lower()


async def test_records_for_a_broker_advertised_on_a_blocked_address_are_not_sent_to_it(
    kafka_broker: KafkaBroker,
) -> None:
    # No channel, so no check of the advertised brokers before producing: only the connector stands in the way.
    connector = KafkaConnector()
    producers = KafkaProducers(message_timeout_s=MESSAGE_TIMEOUT_S, connector=connector)
    producers.allow_networks = tuple(ONLY_127_0_0_1)
    topic = f"connector-advertised-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(kafka_broker.create_topic, topic, 1)
    counter = TopicCounter(kafka_broker, topic, 1)
    cluster = ClusterConfig(brokers=(kafka_broker.redirecting_bootstrap(),))
    try:
        pending = await producers.enqueue(cluster, topic, [Record(b"key", b"value", []) for _ in range(3)])
        outcomes = await pending.outcomes()
    finally:
        await producers.aclose()

    assert connector.counts.refused["blocked_address"] >= 1
    for outcome in outcomes:
        assert isinstance(outcome, ProduceFailed)
        assert isinstance(outcome.failure, BlockedAddress)
        assert f"advertises a broker at a blocked address, {kafka_broker.redirected_address()}" in (
            outcome.failure.message
        )
    assert await asyncio.to_thread(counter.count) == 0


async def test_a_cluster_closes_its_listeners_when_its_producer_closes(kafka_broker: KafkaBroker) -> None:
    connector = KafkaConnector()
    producers = KafkaProducers(message_timeout_s=MESSAGE_TIMEOUT_S, connector=connector)
    producers.allow_networks = tuple(ONLY_127_0_0_1)
    topic = f"connector-close-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(kafka_broker.create_topic, topic, 1)
    cluster = ClusterConfig(brokers=(kafka_broker.bootstrap("PLAINTEXT"),))
    pending = await producers.enqueue(cluster, topic, [Record(b"key", b"value", [])])
    (outcome,) = await pending.outcomes()
    (route,) = connector.open_routes
    listener = route.local_addresses((_address(kafka_broker.bootstrap("PLAINTEXT")),))[0]

    await producers.aclose()

    assert not isinstance(outcome, ProduceFailed), outcome
    assert connector.counts.opened >= 1
    assert connector.open_routes == set()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(_address(listener), timeout=5).close()


@pytest.fixture
def name_outside_the_certificate(monkeypatch: pytest.MonkeyPatch) -> str:
    """A name that resolves to 127.0.0.1, where the test broker is, but that its certificate does not name."""
    real = socket.getaddrinfo
    name = "broker.test"

    def resolving(host: Any, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.1" if host == name else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolving)
    return name


async def test_a_tls_broker_is_verified_against_its_name_as_configured(
    kafka_broker: KafkaBroker, name_outside_the_certificate: str
) -> None:
    producers = KafkaProducers(message_timeout_s=MESSAGE_TIMEOUT_S, connector=KafkaConnector())
    channel = KafkaChannel(_no_secrets, producers=producers, allow_networks=LOOPBACK)
    topic = f"connector-tls-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(kafka_broker.create_topic, topic, 1)
    port = kafka_broker.bootstrap("SSL").rpartition(":")[2]
    ca = kafka_broker.tls.ca_pem.read_text()

    def subscription(host: str) -> Subscription:
        target = KafkaTarget(topic=topic, brokers=(f"{host}:{port}",), security_protocol="SSL", ca_certificate=ca)
        return subscription_factory(id=f"sub_{host}", via=Via.KAFKA, callback_url=None, kafka=target)

    try:
        named = await channel.send(outbound_message_factory(subscription("localhost")))
        mismatched = await channel.send(outbound_message_factory(subscription(name_outside_the_certificate)))
    finally:
        await channel.aclose()

    assert named.error is None, named.error
    assert mismatched.error is not None
    assert mismatched.error.error_class == "tls", mismatched.error.message
    assert f"TLS failed with the broker {name_outside_the_certificate}:{port}" in mismatched.error.message
    assert "127.0.0.1" not in mismatched.error.message


class UnreadableBroker:
    """A fake broker on loopback: a sound ApiVersions answer, then Metadata responses cut off inside the brokers."""

    # (api key, min version, max version): Produce, Metadata up to a flexible version, InitProducerId.
    APIS = ((0, 3, 9), (3, 0, 12), (22, 0, 4))

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer requests until the client goes."""
        try:
            while True:
                (size,) = struct.unpack(">i", await reader.readexactly(4))
                api_key, _version, correlation_id = struct.unpack(">hhi", (await reader.readexactly(size))[:8])
                body = struct.pack(">i", correlation_id) + self._answer(api_key)
                writer.write(struct.pack(">i", len(body)) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def _answer(self, api_key: int) -> bytes:
        if api_key == 18:  # ApiVersions v3: error, compact array of (key, min, max, tags), throttle, tags
            apis = b"".join(struct.pack(">hhh", *api) + b"\x00" for api in self.APIS)
            return struct.pack(">hb", 0, len(self.APIS) + 1) + apis + struct.pack(">i", 0) + b"\x00"
        # Metadata v12: header tags, throttle, then one broker promised and a node id only.
        return b"\x00" + struct.pack(">i", 0) + b"\x02" + struct.pack(">i", 1)


@pytest.fixture
async def unreadable_broker() -> AsyncIterator[str]:
    """The "127.0.0.1:port" of a fake broker whose Metadata responses cannot be read."""
    server = await asyncio.start_server(UnreadableBroker().serve, "127.0.0.1", 0)
    yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()


async def test_a_metadata_response_the_connector_cannot_read_closes_the_connection_and_fails_closed(
    unreadable_broker: str,
) -> None:
    connector = KafkaConnector()
    producers = KafkaProducers(message_timeout_s=MESSAGE_TIMEOUT_S, connect_timeout_s=3.0, connector=connector)
    producers.allow_networks = tuple(ONLY_127_0_0_1)
    try:
        with pytest.raises(ProduceFailed) as failed:
            await producers.advertised_brokers(ClusterConfig(brokers=(unreadable_broker,)), "anything")
    finally:
        await producers.aclose()

    assert connector.counts.refused["unreadable"] >= 1
    assert failed.value.failure is not None
    assert failed.value.failure.message.startswith(f"The connection to the broker {unreadable_broker} was closed")


class Echo:
    """A peer that sends back what it gets, and counts the connections it is still serving."""

    def __init__(self) -> None:
        self.serving = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Echo until the other side closes."""
        self.serving += 1
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self.serving -= 1
            writer.close()


async def test_a_fault_in_one_connection_closes_it_alone_is_counted_and_the_next_connection_is_relayed() -> None:
    calls: list[str] = []

    async def failing_once(host: str, port: int, allow: tuple[IPNetwork, ...]) -> list[ResolvedAddress]:
        calls.append(host)
        if len(calls) == 1:
            raise RuntimeError("a bug in the resolver")
        return await resolve_allowed(host, port, allow)

    connector = KafkaConnector(resolve=failing_once)
    echo = Echo()
    peer = await asyncio.start_server(echo.serve, "127.0.0.1", 0)
    route = connector.route(tuple(ONLY_127_0_0_1), None, 5.0)
    (listener,) = route.local_addresses((("127.0.0.1", peer.sockets[0].getsockname()[1]),))
    produce_request = request_frame(api_key=0, correlation_id=7)
    try:
        first = await asyncio.open_connection(*_address(listener))
        first[1].write(produce_request)
        closed_first = await read_until_closed(first[0])
        second = await asyncio.open_connection(*_address(listener))
        second[1].write(produce_request)
        echoed = await second[0].readexactly(len(produce_request))
        second[1].close()
        first[1].close()
    finally:
        route.close()
        peer.close()
    for _ in range(100):  # the relay closes its side once the client has: let the peer's handler end
        if not echo.serving:
            break
        await asyncio.sleep(0.05)

    assert closed_first == b""
    assert echoed == produce_request
    assert connector.counts.faults == 1
    assert connector.counts.opened == 1


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """What a connection gives until it is closed; a reset (the closer had unread bytes) closes it too."""
    try:
        return await reader.read()
    except ConnectionResetError:
        return b""


def request_frame(api_key: int, correlation_id: int) -> bytes:
    """A Kafka request frame with a header and a few bytes of body."""
    body = struct.pack(">hhi", api_key, 9, correlation_id) + b"records"
    return struct.pack(">i", len(body)) + body


def test_librdkafka_is_given_only_loopback_listeners_and_no_tls_of_its_own() -> None:
    connector = KafkaConnector()
    producers = KafkaProducers(connector=connector)
    cluster = ClusterConfig(
        brokers=("broker-1.example.com:9093", "broker-2.example.com:9093"),
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="user",
        sasl_password="secret",
        client_key="-----BEGIN PRIVATE KEY-----",
    )
    route = connector.route((), None, 5.0)
    try:
        settings = producers.settings.through_route(route, cluster)
    finally:
        route.close()

    listeners = str(settings["bootstrap.servers"]).split(",")
    assert len(listeners) == 2
    assert all(listener.startswith("127.0.0.1:") for listener in listeners)
    assert [route.broker_behind(listener) for listener in listeners] == list(cluster.brokers)
    assert settings["security.protocol"] == "SASL_PLAINTEXT"
    assert settings["sasl.password"] == "secret"
    assert not [name for name in settings if name.startswith("ssl.")]


def _address(host_port: str) -> tuple[str, int]:
    host, _, port = host_port.rpartition(":")
    return host, int(port)


async def _no_secrets(subscription_id: str) -> KafkaSecrets | None:
    return None
