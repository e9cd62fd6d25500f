"""The Kafka path: how a Kafka subscription's events become records on its topic.

- `channel`: the Kafka channel, one record per attempt, and the errors it reports.
- `producers`: the pool of librdkafka producers, one per cluster configuration.
- `clusters`: a cluster configuration, the key of that pool.
- `streamer`: the worker loop that leases ready streams, reads, filters, sends and records their batches.
- `stream_store`: every write to `kafka_streams` and `stream_pauses`, the reads of a stream, and its recorded batches.
"""
