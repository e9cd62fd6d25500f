"""The Kafka test broker: each security scenario carries a record with headers, bad credentials are refused
quickly, and auto topic creation is off. That its topics and records survive a stop and start on the same ports is
checked by the one test that restarts it, test_kafka_channel.py's broker restart (each restart costs 10-25 s)."""

from __future__ import annotations

import socket
import ssl
import struct
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from chargewire.devtools.certificates import generate_tls_files
from chargewire.devtools.kafka_broker import MECHANISMS, ClientConfig, KafkaBroker

# Generous: the first test may also wait for the run's broker to start (and its jars to be fetched, cold cache).
pytestmark = pytest.mark.timeout(240)

HEADERS: list[tuple[str, str | bytes | None]] = [("event-type", b"session.started"), ("chargewire-id", b"evt_123")]
SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
# ApiVersions v0 request: api key 18, version 0, correlation id 7, client id "test".
API_VERSIONS_REQUEST = struct.pack(">ihhih", 14, 18, 0, 7, 4) + b"test"


@pytest.fixture
def broker(kafka_broker: KafkaBroker) -> KafkaBroker:
    """The run's broker: a broker of the module's own took 15 s to start beside the run's (loaded machine)."""
    return kafka_broker


def fresh_topic(broker: KafkaBroker, label: str) -> str:
    """A new topic with a unique name."""
    name = f"harness-{label}-{uuid.uuid4().hex[:8]}"
    broker.create_topic(name)
    return name


def produce(config: ClientConfig, topic: str, value: bytes) -> None:
    """Produce one record with HEADERS to partition 0 and require its delivery."""
    outcomes: list[KafkaError | None] = []
    producer = Producer({**config, "message.timeout.ms": 15_000})
    producer.produce(
        topic, value=value, key=b"station-1", headers=HEADERS, partition=0, on_delivery=lambda e, _m: outcomes.append(e)
    )
    assert producer.flush(20) == 0
    assert outcomes == [None]


def consume_all(config: ClientConfig, topic: str, count: int) -> list[bytes]:
    """Read `count` records from partition 0 from the start, checking each one's key and headers."""
    consumer = Consumer({**config, "group.id": f"harness-{uuid.uuid4().hex}", "enable.auto.commit": False})
    values: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 20
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(1)
            if message is None:
                continue
            assert message.error() is None, message.error()
            assert message.key() == b"station-1"
            assert message.headers() == HEADERS
            value = message.value()
            assert value is not None
            values.append(value)
    finally:
        consumer.close()
    return values


def assert_round_trip(broker: KafkaBroker, config: ClientConfig, label: str) -> None:
    """A record produced over `config` comes back, with its headers, over `config`."""
    topic = fresh_topic(broker, label)
    value = f"payload over {label}".encode()
    produce(config, topic, value)
    assert consume_all(config, topic, 1) == [value]


def first_error_codes(config: ClientConfig, within_s: float) -> set[int]:
    """Produce once and collect the error_cb codes seen until the first one (or `within_s`)."""
    errors: list[KafkaError] = []
    producer = Producer({**config, "message.timeout.ms": 3_000, "error_cb": errors.append, "log_level": 0})
    producer.produce("any-topic", value=b"never delivered", headers=HEADERS)
    deadline = time.monotonic() + within_s
    while not errors and time.monotonic() < deadline:
        producer.poll(0.1)
    producer.purge()
    producer.flush(1)
    return {error.code() for error in errors}


def tls_exchange(address: str, context: ssl.SSLContext) -> bytes:
    """Send an ApiVersions request over raw TLS and return the response's first bytes."""
    host, port = address.rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(API_VERSIONS_REQUEST)
        return tls.recv(8)


def test_plaintext_listener_carries_a_record_with_headers(broker: KafkaBroker) -> None:
    assert_round_trip(broker, broker.client_config("PLAINTEXT"), "plaintext")


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_sasl_plaintext_listener_accepts_the_user_of_each_mechanism(broker: KafkaBroker, mechanism: str) -> None:
    assert_round_trip(broker, broker.client_config("SASL_PLAINTEXT", mechanism), f"sasl-plaintext-{mechanism}")


def test_ssl_listener_carries_a_record_after_verifying_the_broker_certificate(broker: KafkaBroker) -> None:
    config = broker.client_config("SSL")
    assert config["ssl.ca.location"] == str(broker.tls.ca_pem)
    assert "ssl.endpoint.identification.algorithm" not in config  # librdkafka's default: check the host name
    assert_round_trip(broker, config, "ssl")


def test_ssl_listener_accepts_a_client_certificate(broker: KafkaBroker) -> None:
    assert_round_trip(broker, broker.client_config("SSL", client_certificate=True), "ssl-client-cert")


def test_ssl_listener_refuses_a_client_certificate_from_another_ca(broker: KafkaBroker, tmp_path: Path) -> None:
    # librdkafka leaves out a certificate the broker would not trust, so a raw TLS client presents it.
    stranger = generate_tls_files(tmp_path, "another CA")
    trusted = ssl.create_default_context(cafile=str(broker.tls.ca_pem))
    trusted.load_cert_chain(broker.tls.client_cert_pem, broker.tls.client_key_pem)
    assert len(tls_exchange(broker.bootstrap("SSL"), trusted)) > 0
    untrusted = ssl.create_default_context(cafile=str(broker.tls.ca_pem))
    untrusted.load_cert_chain(stranger.client_cert_pem, stranger.client_key_pem)
    with pytest.raises(ssl.SSLError, match="CERTIFICATE_UNKNOWN"):
        tls_exchange(broker.bootstrap("SSL"), untrusted)


def test_mtls_listener_carries_a_record_with_the_client_certificate(broker: KafkaBroker) -> None:
    assert_round_trip(broker, broker.client_config("MTLS"), "mtls")


@pytest.mark.timeout(30)
def test_mtls_listener_refuses_a_client_without_certificate(broker: KafkaBroker) -> None:
    codes = first_error_codes(broker.client_config("MTLS", client_certificate=False), within_s=10)
    assert codes & {KafkaError._TRANSPORT, KafkaError._SSL}, codes


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_sasl_ssl_listener_accepts_the_user_of_each_mechanism(broker: KafkaBroker, mechanism: str) -> None:
    assert_round_trip(broker, broker.client_config("SASL_SSL", mechanism), f"sasl-ssl-{mechanism}")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("protocol", SASL_PROTOCOLS)
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_wrong_password_is_reported_as_an_authentication_error_within_seconds(
    broker: KafkaBroker, protocol: str, mechanism: str
) -> None:
    config = {**broker.client_config(protocol, mechanism), "sasl.password": "not-the-password"}
    started = time.monotonic()
    codes = first_error_codes(config, within_s=10)
    assert KafkaError._AUTHENTICATION in codes, codes
    assert time.monotonic() - started < 10


@pytest.mark.timeout(30)
def test_producing_to_an_unknown_topic_fails_because_auto_creation_is_off(broker: KafkaBroker) -> None:
    outcomes: list[KafkaError | None] = []
    producer = Producer(
        {**broker.client_config("PLAINTEXT"), "message.timeout.ms": 10_000, "topic.metadata.propagation.max.ms": 1_000}
    )
    topic = f"harness-missing-{uuid.uuid4().hex[:8]}"
    producer.produce(topic, value=b"lost", on_delivery=lambda e, _m: outcomes.append(e))
    producer.flush(15)
    assert [error.code() if error else None for error in outcomes] == [KafkaError.UNKNOWN_TOPIC_OR_PART]
    assert topic not in broker.admin().list_topics(timeout=10).topics


def test_redirect_listener_advertises_the_broker_on_127_0_0_2_and_it_serves_there(broker: KafkaBroker) -> None:
    config: ClientConfig = {"bootstrap.servers": broker.redirecting_bootstrap()}
    assert broker.redirecting_bootstrap().startswith("127.0.0.1:")
    assert broker.redirected_address().startswith("127.0.0.2:")
    metadata = Producer(config).list_topics(timeout=10)
    assert [f"{b.host}:{b.port}" for b in metadata.brokers.values()] == [broker.redirected_address()]
    assert_round_trip(broker, config, "redirect")
