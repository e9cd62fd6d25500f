"""The guarded connector's counts as Prometheus metrics."""

from prometheus_client import CollectorRegistry, generate_latest

from chargewire.kafka.connector import KafkaConnector
from chargewire.kafka.connector_metrics import ConnectorCollector


def test_connector_metrics_show_connections_opened_and_refused_by_reason() -> None:
    connector = KafkaConnector()
    connector.counts.opened = 5
    connector.counts.refused["blocked_address"] = 2
    connector.counts.faults = 1
    registry = CollectorRegistry()
    registry.register(ConnectorCollector(connector))

    text = generate_latest(registry).decode()

    assert 'chargewire_kafka_broker_connections_total{outcome="opened"} 5.0' in text
    assert 'chargewire_kafka_broker_connections_total{outcome="blocked_address"} 2.0' in text
    assert 'chargewire_kafka_broker_connections_total{outcome="tls"} 0.0' in text
    assert "chargewire_kafka_connector_faults_total 1.0" in text
    assert "chargewire_kafka_connector_routes 0.0" in text
