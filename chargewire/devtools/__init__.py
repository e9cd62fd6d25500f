"""Developer and test tooling: throwaway PostgreSQL clusters and Kafka brokers, TLS material for them."""

__all__ = ["certificates", "kafka_broker", "kafka_jars", "kafka_joined_broker", "postgres"]
