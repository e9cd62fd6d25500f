"""The librdkafka settings a cluster's producer is opened with: the pool's defaults under the cluster's own.

Every producer acknowledges with every replica and idempotence, partitions keys as Java clients do, and bounds
an attempt by the pool's timeouts. The cluster's brokers, security and compression come on top
(`ClusterConfig.client_settings`). A producer reaches its brokers only through the guarded connector, so the
settings it is opened with name the route's loopback listeners instead, and leave TLS to the connector
(`through_route`); `tls_context` is the connector's side of that TLS.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping

from confluent_kafka import KafkaError, KafkaException

from chargewire.kafka.broker_tls import ClientKeyRefused, broker_context
from chargewire.kafka.clusters import ClientSettings, ClusterConfig
from chargewire.kafka.connector import BrokerRoute
from chargewire.models import split_broker


class ProducerSettings:
    """The defaults every producer of a pool shares, and the settings of each cluster's producer."""

    def __init__(
        self,
        *,
        message_timeout_s: float,
        connect_timeout_s: float,
        topic_wait_s: float,
        linger_ms: float,
        gzip_level: int,
        extra_settings: Mapping[str, str | int | float | bool] | None,
    ) -> None:
        """Build the defaults from the pool's limits (`KafkaProducers` describes them)."""
        self._defaults: ClientSettings = {
            "acks": "all",
            "enable.idempotence": True,
            # Java clients' partitioner: a key lands on the same partition whichever client produced it.
            "partitioner": "murmur2_random",
            "message.timeout.ms": int(message_timeout_s * 1000),
            "request.timeout.ms": int(message_timeout_s * 1000),
            "socket.connection.setup.timeout.ms": int(connect_timeout_s * 1000),
            "topic.metadata.propagation.max.ms": int(topic_wait_s * 1000),
            "reconnect.backoff.max.ms": 1000,
            "linger.ms": linger_ms,
            "client.id": "chargewire",
            **(extra_settings or {}),
        }
        self._gzip_level = gzip_level

    def for_cluster(self, cluster: ClusterConfig) -> ClientSettings:
        """The librdkafka settings of `cluster`'s producer, without its callbacks."""
        # librdkafka's gzip default (zlib level 6) costs twice the CPU of level 1 per record, for output
        # about 15 % smaller on JSON: the producer's compression was the largest single cost of a delivery.
        level: ClientSettings = {"compression.level": self._gzip_level} if cluster.compression_codec == "gzip" else {}
        return {**self._defaults, **level, **cluster.client_settings()}

    def through_route(self, route: BrokerRoute, cluster: ClusterConfig) -> ClientSettings:
        """The settings of `cluster`'s producer with every broker behind `route`, which does the TLS too."""
        settings = {name: value for name, value in self.for_cluster(cluster).items() if not name.startswith("ssl.")}
        brokers = tuple(split_broker(broker) for broker in cluster.brokers)
        settings["bootstrap.servers"] = ",".join(route.local_addresses(brokers))
        settings["security.protocol"] = "SASL_PLAINTEXT" if cluster.sasl_mechanism else "PLAINTEXT"
        settings["broker.address.family"] = "v4"  # the listeners are on 127.0.0.1
        return settings


def tls_context(cluster: ClusterConfig) -> ssl.SSLContext | None:
    """The connector's TLS context for `cluster`, None without TLS; a client key that cannot be used is refused."""
    if not cluster.security_protocol.endswith("SSL"):
        return None
    try:
        return broker_context(cluster.ca_certificate, cluster.client_certificate, cluster.client_key)
    except ClientKeyRefused as exc:
        # As librdkafka refused it, naming the setting: the subscription must be edited.
        raise KafkaException(KafkaError(KafkaError._INVALID_ARG, f"ssl.key.pem: {exc}")) from exc
    except (ssl.SSLError, ValueError) as exc:
        raise KafkaException(KafkaError(KafkaError._INVALID_ARG, f"ssl.ca.pem: the CA cannot be read ({exc})")) from exc
