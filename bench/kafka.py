"""Kafka delivery throughput: events/s from publish to broker acknowledgement, 1 KB payloads, one topic.

A real single-node broker (the test harness), `chargewire serve --no-worker` and one `chargewire worker`
process on SQLite and on PostgreSQL. The clock starts with the first publish request and stops when the
database holds no pending delivery (every record acknowledged by the broker, acks=all); the topic's offsets
are then checked against the event count. Beside it, librdkafka's own producer (`kcat -P`, acks=all,
idempotent) sends the same number of 1 KB records to the same broker.
Usage: python -m bench.kafka [--events 100000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
from confluent_kafka import Consumer, TopicPartition

from bench.common import backend_database, bench_server, server_env, write_result
from chargewire.catalog import load_event_types
from chargewire.devtools.kafka_broker import KafkaBroker
from tests.support.processes import CHARGEWIRE

PARTITIONS = 6
PUBLISH_BATCH = 1000
PUBLISH_CONNECTIONS = 2
WORKER_SETTINGS = {
    "CHARGEWIRE_WORKER_MAX_IN_FLIGHT": "5000",
    "CHARGEWIRE_WORKER_BATCH_SIZE": "1000",
    "CHARGEWIRE_KAFKA_MAX_IN_FLIGHT_PER_SUBSCRIPTION": "5000",
    "CHARGEWIRE_WORKER_POLL_INTERVAL_S": "0.05",
}


def one_kb_payloads(count: int) -> list[dict[str, Any]]:
    """Meter-value events of about 1 KB each, spread over 500 sessions (the record keys)."""
    base = load_event_types()["SessionMeterValuesNotification"].example
    reading = base["meterValues"][0]
    readings = [{**reading, "value": float(i)} for i in range(7)]
    return [{**base, "sessionId": 700_000 + i % 500, "meterValues": readings} for i in range(count)]


def topic_record_count(broker: KafkaBroker, topic: str) -> int:
    """Records in a topic: the sum of its partitions' high watermarks."""
    consumer = Consumer({**broker.client_config("PLAINTEXT"), "group.id": "bench-count"})
    try:
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
            for partition in range(PARTITIONS)
        )
    finally:
        consumer.close()


def kcat_rate(broker: KafkaBroker, topic: str, count: int, workdir: Path) -> float:
    """Records/s of `kcat -P` (librdkafka, acks=all, idempotent) sending `count` 1 KB records."""
    lines = workdir / "records.jsonl"
    with lines.open("wb") as handle:
        for payload in one_kb_payloads(count):
            handle.write(orjson.dumps(payload) + b"\n")
    command = ["kcat", "-P", "-b", broker.bootstrap("PLAINTEXT"), "-t", topic, "-z", "gzip"]
    command += ["-X", "acks=all", "-X", "enable.idempotence=true", "-l", str(lines)]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    return count / (time.perf_counter() - started)


async def _publish_all(base_url: str, token: str, payloads: list[dict[str, Any]]) -> None:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    bodies = [orjson.dumps(payloads[i : i + PUBLISH_BATCH]) for i in range(0, len(payloads), PUBLISH_BATCH)]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def sender(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            async with session.post(f"{base_url}/api/v1/events", data=body, headers=headers) as response:
                if response.status != 202:
                    raise RuntimeError(f"ingest answered {response.status}: {await response.text()}")

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(sender(session) for _ in range(PUBLISH_CONNECTIONS)))


async def _pending(base_url: str) -> tuple[int, int]:
    """(pending, failed) deliveries, read from the queue-depth metric."""
    async with aiohttp.ClientSession() as session, session.get(f"{base_url}/metrics") as response:
        text = await response.text()
    depth = {}
    for line in text.splitlines():
        if line.startswith("chargewire_delivery_queue_depth{"):
            state = line.split('state="', 1)[1].split('"', 1)[0]
            depth[state] = int(float(line.split()[-1]))
    return depth["due"] + depth["scheduled"], depth["failed"]


def run_backend(backend: str, broker: KafkaBroker, events: int) -> dict[str, Any]:
    """Publish `events` and time them to the broker's acknowledgement on one backend."""
    topic = f"bench-{backend}"
    broker.create_topic(topic, partitions=PARTITIONS)
    payloads = one_kb_payloads(events)
    with tempfile.TemporaryDirectory() as tmp, backend_database(backend, Path(tmp)) as url:
        workdir = Path(tmp)
        with bench_server(url, workdir, "--no-worker", env_overrides=WORKER_SETTINGS) as (base_url, token, _pid):
            subscription = {
                "via": "kafka",
                "notifications": ["SessionMeterValuesNotification"],
                "kafka": {"topic": topic, "brokers": [broker.bootstrap("PLAINTEXT")], "compressionCodec": "gzip"},
            }
            created = httpx.post(
                f"{base_url}/public-api/notifications/v2.0",
                json=subscription,
                headers={"Authorization": f"Bearer {token}"},
            )
            created.raise_for_status()
            env = {**os.environ, **server_env(url, workdir, WORKER_SETTINGS)}
            with (workdir / "worker.log").open("w") as log:
                worker = subprocess.Popen([CHARGEWIRE, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
                try:
                    started = time.perf_counter()
                    asyncio.run(_publish_all(base_url, token, payloads))
                    published = time.perf_counter()
                    while True:
                        pending, failed = asyncio.run(_pending(base_url))
                        if pending == 0:
                            break
                        time.sleep(0.05)
                    finished = time.perf_counter()
                finally:
                    worker.terminate()
                    worker.wait(60)
    records = topic_record_count(broker, topic)
    return {
        "events": events,
        "publish_s": round(published - started, 2),
        "publish_to_ack_s": round(finished - started, 2),
        "events_per_s": round(events / (finished - started)),
        "failed": failed,
        "records_in_topic": records,
    }


def main() -> None:
    """Run chargewire on both backends and kcat against one broker; write bench/results/kafka.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10,000 events, for a smoke check")
    args = parser.parse_args()
    events = 10_000 if args.quick else args.events
    if shutil.which("kcat") is None:
        raise SystemExit("kcat is missing: apt-get install -y kcat (make bench-kafka does this)")
    with KafkaBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        broker.create_topic("bench-kcat", partitions=PARTITIONS)
        reference = kcat_rate(broker, "bench-kcat", events, Path(tmp))
        results = {backend: run_backend(backend, broker, events) for backend in ("sqlite", "postgresql")}
    write_result(
        "kafka",
        {
            "payload_bytes": len(orjson.dumps(one_kb_payloads(1)[0])),
            "partitions": PARTITIONS,
            "compression": "gzip",
            "kcat_records_per_s": round(reference),
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
