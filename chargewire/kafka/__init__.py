"""The Kafka path: how a Kafka subscription's events become records on its topic, read here in order.

1. A stream is born. When a subscription becomes a Kafka one, `store.subscription_store` calls
   `stream_lifecycle.follow_subscription` in the same transaction: its `kafka_streams` row starts at the end of the
   log. Disabling opens a pause (`stream_pauses`), enabling closes it; turning it into a webhook turns its
   unread backlog into delivery rows and ends the stream.
2. An event is published. `store.event_store` numbers it into the log (`store.event_log`) and writes no
   delivery row for Kafka subscriptions (decision 0002). The publish wakes the workers' dispatchers (in this
   process, and in others through the store's wake-ups), and each wakes its `streamer.KafkaStreamer`.
3. The stream is claimed. `KafkaStreamer` looks with `stream_store.StreamStore.look` for streams with
   unread events of their names, no lease and no pending rows, and takes each with `StreamStore.lease`.
4. A batch is read. `StreamStore.read` returns the next events past the stream's position, as deliveries
   (stretches a pause covers are skipped); the streamer keeps those the subscription's filter accepts
   (`chargewire.filters`).
5. The batch is sent. The streamer hands it to the dispatcher's attempt stage (`streamer.Attempter`, given
   to it by the dispatcher that builds it, so webhooks and Kafka share one way of turning results into
   records, breakers and metrics). That stage calls `channel.KafkaChannel.send_batch`, which produces one
   record per delivery through the cluster's librdkafka producer (`producers`, keyed by `clusters`), once
   the address guard's checks pass (`broker_checks`). Each record's ack or failure comes back through `acks`
   (`cluster_producer` polls librdkafka for them), and failures are named by `delivery_errors`.
   The run's batches share an `OrderFence` (decision 0005).
6. The batch is recorded. `StreamStore.record_batch` writes, in one transaction that first moves the stream
   past the batch and finds it still leased to this worker: one `attempt_batches` row for the records that
   were delivered, one delivery row per record, an attempts row for each record that failed, and the
   subscription's health (the delivery rows as `store.delivery_writes` builds them, the batch and attempts
   rows as `store.attempt_writes` does, the health as `store.subscription_health_writes` does). A lease that ran
   out (`LeaseLost`) writes nothing: the next worker sends the batch again.
7. Failures are retried as rows. A failed record is a pending delivery now; the dispatcher's claim path
   retries it through the same `KafkaChannel`, and the stream waits until its subscription has none.

Why one package: decision 0006. Its modules sit at three levels of the service, each importing only its own
level and below: `channel`, `broker_checks`, `delivery_errors`, `producers`, `cluster_producer`,
`producer_settings`, `acks` and `clusters` beside the other channels; `streams`, `stream_lifecycle`,
`stream_queries` and `stream_store` beside the stores (they build their SQL on their tables and dialects);
`streamer` beside the dispatcher. This root imports none of them, since `store` and `dispatch` import from the
package: import names from their modules.
"""
