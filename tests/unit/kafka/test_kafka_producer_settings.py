"""The librdkafka settings a cluster's producer is opened with."""

from chargewire.kafka.clusters import ClusterConfig
from chargewire.kafka.producers import KafkaProducers


def test_gzip_clusters_compress_at_the_configured_zlib_level() -> None:
    producers = KafkaProducers(gzip_level=3)

    settings = producers.settings.for_cluster(ClusterConfig(brokers=("127.0.0.1:9092",), compression_codec="gzip"))

    assert settings["compression.type"] == "gzip"
    assert settings["compression.level"] == 3


def test_gzip_is_compressed_at_the_fastest_level_by_default() -> None:
    settings = KafkaProducers().settings.for_cluster(ClusterConfig(brokers=("127.0.0.1:9092",)))

    assert settings["compression.level"] == 1


def test_other_codecs_keep_their_own_default_level() -> None:
    settings = KafkaProducers(gzip_level=3).settings.for_cluster(
        ClusterConfig(brokers=("b:9092",), compression_codec="lz4")
    )

    assert settings["compression.type"] == "lz4"
    assert "compression.level" not in settings


def test_producers_acknowledge_with_every_replica_and_idempotence() -> None:
    settings = KafkaProducers().settings.for_cluster(ClusterConfig(brokers=("b:9092",)))

    assert settings["acks"] == "all"
    assert settings["enable.idempotence"] is True
    assert settings["bootstrap.servers"] == "b:9092"
