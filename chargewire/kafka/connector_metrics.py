"""The guarded connector's figures for `/metrics`: broker connections opened and refused, faults, open routes."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from chargewire.kafka.connector import KafkaConnector

# Every reason the connector refuses a connection, shown at 0 before the first one.
REFUSAL_REASONS = ("blocked_address", "unreachable", "tls", "unreadable")


class ConnectorCollector(Collector):
    """Reads a connector's counts when `/metrics` is rendered (plain integers: nothing is locked per connection)."""

    def __init__(self, connector: KafkaConnector) -> None:
        self._connector = connector

    def collect(self) -> Iterator[Metric]:
        """Connections by outcome, faults, and the producers' routes open now."""
        counts = self._connector.counts
        connections = CounterMetricFamily(
            "chargewire_kafka_broker_connections",
            "Connections to Kafka brokers through the address guard: opened, or refused by reason "
            "(blocked_address, unreachable, tls, unreadable).",
            labels=["outcome"],
        )
        connections.add_metric(["opened"], counts.opened)
        for reason in sorted({*REFUSAL_REASONS, *counts.refused}):
            connections.add_metric([reason], counts.refused[reason])
        faults = CounterMetricFamily(
            "chargewire_kafka_connector_faults", "Errors inside the Kafka connector; each closed one connection."
        )
        faults.add_metric([], counts.faults)
        routes = GaugeMetricFamily(
            "chargewire_kafka_connector_routes", "Kafka producers whose brokers the connector listens for now."
        )
        routes.add_metric([], len(self._connector.open_routes))
        yield from (connections, faults, routes)
