"""The syntax of a Kafka broker, "host:port", as subscriptions name it."""

from __future__ import annotations

import pytest

from chargewire.models import split_broker


@pytest.mark.parametrize(
    ("broker", "host", "port"),
    [
        ("kafka-1.example.net:9092", "kafka-1.example.net", 9092),
        ("10.0.0.1:1", "10.0.0.1", 1),
        ("[::1]:9092", "::1", 9092),
        ("[fd00:ec2::254]:65535", "fd00:ec2::254", 65535),
        ("[::ffff:127.0.0.1]:9093", "::ffff:127.0.0.1", 9093),
    ],
)
def test_broker_splits_into_host_without_brackets_and_port(broker: str, host: str, port: int) -> None:
    assert split_broker(broker) == (host, port)


@pytest.mark.parametrize(
    "broker", ["kafka-1", "kafka-1:", "kafka-1:0", "kafka-1:65536", "::1:9092", "[::1]", "a:9092,b:9092", 9092, None]
)
def test_anything_but_host_colon_port_is_a_value_error(broker: object) -> None:
    with pytest.raises(ValueError, match="host:port"):
        split_broker(broker)
