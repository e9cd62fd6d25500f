"""A design measure, not a feature: how fast Kafka delivery could be if it streamed from the event log.

`make bench-kafka` misses its 20,000 events/s because every delivered record costs five row writes (the
delivery row at ingest, its claim, its attempt row, its delivered mark, and the event itself), and the
objects and statements around them. DESIGN.md's step 4 takes Kafka deliveries off that per-row queue. This
sketch measures the shape of that design on the same machine, broker, records and ingest before anyone
builds it (`docs/decisions/0002-kafka-streamed-delivery.md`):

- the real API (`chargewire serve --no-worker`) ingests the events, with no subscription, so it stores the
  events and no delivery rows;
- one streaming process reads the events past its cursor in insertion order, signs each with chargewire's
  own signing functions, produces them with chargewire's producer settings, waits for every ack of the
  batch, and then in one transaction advances its cursor and records the batch: either one row per batch
  holding each record's partition and offset (`--log batch`), or one delivery row and one attempt row per
  record as the delivery log has today (`--log record`).

What it leaves out, and a product must not: leases on the cursor, retries and failed records, filters,
several subscriptions. It runs on SQLite only. The clock and the record count are `bench.kafka`'s.

Usage: python -m bench.kafka_stream_sketch [--events 100000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import KafkaError, Message, Producer

from bench.common import backend_database, bench_server, cpu_seconds, cpu_share, machine_busy_seconds, write_result
from bench.kafka import PARTITIONS, one_kb_payloads, publish_all, request_bodies, wait_for_records
from chargewire.channels.base import OutboundMessage
from chargewire.channels.signing import message_headers
from chargewire.devtools.kafka_broker import KafkaBroker
from chargewire.kafka.clusters import ClusterConfig
from chargewire.kafka.producers import KafkaProducers
from chargewire.models import KafkaTarget, Subscription, Via
from chargewire.security.tokens import new_signing_secret
from tests.support.kafka_topics import TopicCounter

BATCH = 5000
NAMES = ("SessionMeterValuesNotification",)
SUBSCRIPTION = "sub_sketch"
TOKEN = "sketch-token-" + "t" * 40
SECRET = new_signing_secret()
_SUBSCRIPTION = Subscription(
    SUBSCRIPTION, Via.KAFKA, NAMES, "tok_sketch", 2, datetime.now(UTC), datetime.now(UTC), kafka=None
)
Acks = list[tuple[int, int] | str | None]
Variant = tuple[str, int]  # the log's shape ("batch" or "record"), and how many batches may await their acks
VARIANTS: tuple[Variant, ...] = (("batch", 1), ("record", 1), ("batch", 2), ("record", 2))


def stream(database: Path, bootstrap: str, topic: str, total: int, log: str, depth: int) -> None:
    """Deliver `total` events from the events table to `topic`, with up to `depth` batches awaiting their acks.

    The cursor only ever moves past a batch whose every record was acknowledged, in order.
    """
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("PRAGMA busy_timeout=30000")
    connection.execute("CREATE TABLE sketch_cursor (subscription_id TEXT PRIMARY KEY, position INTEGER NOT NULL)")
    connection.execute(
        "CREATE TABLE sketch_batches (id INTEGER PRIMARY KEY, subscription_id TEXT, first INTEGER, last INTEGER,"
        " started_at TEXT, duration_ms REAL, acks TEXT)"
    )
    connection.execute("INSERT INTO sketch_cursor VALUES (?, 0)", (SUBSCRIPTION,))
    cluster = ClusterConfig.for_target(KafkaTarget(topic=topic, brokers=(bootstrap,)), None)
    producer = Producer(KafkaProducers().settings.for_cluster(cluster))
    print("delivering", flush=True)
    read_up_to, delivered = 0, 0
    in_flight: deque[_SentBatch] = deque()
    while delivered < total:
        rows = connection.execute(
            "SELECT rowid, id, name, payload, entity_id FROM events WHERE rowid > ? AND name IN (?)"
            " ORDER BY rowid LIMIT ?",
            (read_up_to, *NAMES, BATCH),
        ).fetchall()
        if rows:
            in_flight.append(_produce_batch(producer, topic, rows))
            read_up_to = rows[-1][0]
        if in_flight and (len(in_flight) >= depth or not rows):
            done = in_flight.popleft().acknowledged(producer)
            _record(connection, done, log)
            delivered += len(done.rows)
        elif not rows:
            time.sleep(0.005)


@dataclass
class _SentBatch:
    rows: list[tuple[Any, ...]]
    started: datetime
    clock: float
    delivery_ids: list[str] = field(default_factory=list)
    shown: list[list[tuple[str, str]]] = field(default_factory=list)
    acks: Acks = field(default_factory=list)
    unanswered: int = 0
    duration_ms: float = 0.0

    def acknowledged(self, producer: Producer) -> _SentBatch:
        """Serve delivery reports until every record of this batch has its answer."""
        while self.unanswered:
            producer.poll(0.001)
        self.duration_ms = (time.perf_counter() - self.clock) * 1000
        return self

    def reporter(self, index: int) -> Any:
        """The delivery callback of the batch's record at `index`."""

        def report(error: KafkaError | None, message: Message) -> None:
            self.acks[index] = str(error) if error else (message.partition() or 0, message.offset() or 0)
            self.unanswered -= 1

        return report


def _record(connection: sqlite3.Connection, batch: _SentBatch, log: str) -> None:
    """Log the batch and move the cursor past it, in one transaction."""
    rows = batch.rows
    connection.execute("BEGIN IMMEDIATE")
    if log == "record":
        _log_each_record(connection, batch)
    connection.execute(
        "INSERT INTO sketch_batches (subscription_id, first, last, started_at, duration_ms, acks)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (SUBSCRIPTION, rows[0][0], rows[-1][0], batch.started.isoformat(), batch.duration_ms, _json(batch.acks)),
    )
    connection.execute("UPDATE sketch_cursor SET position = ?", (rows[-1][0],))
    connection.execute("COMMIT")


def _produce_batch(producer: Producer, topic: str, rows: list[tuple[Any, ...]]) -> _SentBatch:
    """Produce one record per row with chargewire's headers; the batch's acks arrive as librdkafka reports them."""
    batch = _SentBatch(rows, datetime.now(UTC), time.perf_counter(), acks=[None] * len(rows), unanswered=len(rows))
    for index, (_rowid, event_id, name, payload, entity_id) in enumerate(rows):
        delivery_id = f"dlv_{event_id[4:]}"
        message = OutboundMessage(
            delivery_id, event_id, name, payload, entity_id, _SUBSCRIPTION, 1, "chargewire", TOKEN, (SECRET,)
        )
        headers = [("notification", name), *message_headers(message, batch.started).items()]
        batch.delivery_ids.append(delivery_id)
        batch.shown.append(headers)
        key = (entity_id or delivery_id).encode()
        while True:
            try:
                producer.produce(topic, value=payload, key=key, headers=headers, on_delivery=batch.reporter(index))
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    return batch


def _log_each_record(connection: sqlite3.Connection, batch: _SentBatch) -> None:
    """One delivered delivery row and one attempt row per record, shaped as chargewire writes them."""
    stamp = batch.started.strftime("%Y-%m-%d %H:%M:%S.%f")
    connection.executemany(
        "INSERT INTO deliveries (id, event_id, subscription_id, event_name, status, attempt_count, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, 'delivered', 1, ?, ?)",
        [
            (delivery_id, row[1], SUBSCRIPTION, row[2], stamp, stamp)
            for delivery_id, row in zip(batch.delivery_ids, batch.rows, strict=True)
        ],
    )
    connection.executemany(
        "INSERT INTO attempts (id, delivery_id, number, started_at, duration_ms, outcome, request_headers,"
        " response_headers) VALUES (?, ?, 1, ?, ?, 'delivered', ?, ?)",
        [
            (
                f"att_{delivery_id[4:]}",
                delivery_id,
                stamp,
                batch.duration_ms,
                _json(dict(headers)),
                _json(_offsets(ack)),
            )
            for delivery_id, headers, ack in zip(batch.delivery_ids, batch.shown, batch.acks, strict=True)
        ],
    )


def _offsets(ack: tuple[int, int] | str | None) -> dict[str, str]:
    partition, offset = ack if isinstance(ack, tuple) else (-1, -1)
    return {"kafka-partition": str(partition), "kafka-offset": str(offset)}


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


def measure(broker: KafkaBroker, payloads: list[dict[str, Any]], variant: Variant, round_: int) -> dict[str, Any]:
    """Publish through the real API while the sketch streams; events/s until the topic holds them all."""
    log, depth = variant
    topic = f"sketch-{log}-{depth}-{round_}"
    broker.create_topic(topic, partitions=PARTITIONS)
    counter = TopicCounter(broker, topic, PARTITIONS)
    events = len(payloads)
    with (
        tempfile.TemporaryDirectory() as tmp,
        backend_database("sqlite", Path(tmp)) as url,
        bench_server(url, Path(tmp), "--no-worker") as (base_url, token, api_pid),
    ):
        database = Path(tmp) / "bench.db"
        command = [sys.executable, "-m", "bench.kafka_stream_sketch", "stream", str(database)]
        command += [broker.bootstrap("PLAINTEXT"), topic, str(events), log, str(depth)]
        streamer = subprocess.Popen(command, stdout=subprocess.PIPE, env=os.environ.copy())
        try:
            assert streamer.stdout is not None
            streamer.stdout.readline()  # "delivering": past its imports
            groups = {"api": [api_pid], "streamer": [streamer.pid], "broker": [broker.pid or 0]}
            cpu_before, busy_before = cpu_seconds(groups), machine_busy_seconds()
            started = time.perf_counter()
            asyncio.run(publish_all(base_url, token, request_bodies(payloads)))
            _first, last = wait_for_records(counter, events)
            cpu_after, busy_after = cpu_seconds(groups), machine_busy_seconds()
            streamer.wait(60)
        finally:
            streamer.kill()
    seconds = last - started
    cores = cpu_share(cpu_before, cpu_after, seconds)
    cpu = {name: round(share * seconds / events * 1e6) for name, share in cores.items()}
    cpu["whole_machine"] = round((busy_after - busy_before) / events * 1e6)
    return {"events_per_s": round(events / seconds), "records_in_topic": counter.count(), "cpu_us_per_event": cpu}


def main() -> None:
    """Every variant, `--rounds` times each (the first round also warms the broker); write the results."""
    if len(sys.argv) > 1 and sys.argv[1] == "stream":
        database, bootstrap, topic, total, log, depth = sys.argv[2:8]
        stream(Path(database), bootstrap, topic, int(total), log, int(depth))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    payloads = one_kb_payloads(args.events)
    with KafkaBroker() as broker:
        results = {
            f"{log} log, {depth} batch{'es' if depth > 1 else ''} awaiting acks": [
                measure(broker, payloads, (log, depth), round_) for round_ in range(args.rounds)
            ]
            for log, depth in VARIANTS
        }
    write_result("kafka_stream_sketch", {"events": args.events, "batch_size": BATCH, "results": results})


if __name__ == "__main__":
    main()
