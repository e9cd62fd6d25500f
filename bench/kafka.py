"""Kafka delivery throughput: events/s from publish to broker acknowledgement, 1 KB payloads, one topic.

A real single-node broker (the test harness, one topic of 6 partitions), and either `chargewire serve` with
its own worker or `chargewire serve --no-worker` with 1 or 2 `chargewire worker` processes, on SQLite and on
PostgreSQL, with the subscription's default codec (gzip). The broker is warmed up first with 300,000
records shaped like chargewire's, as a broker in service is (`warm_up`). Two measures each:

- end to end: the workers are up (past their start-up) and run while the events are published (batches of
  1,000 over 2 connections); the clock runs from the first publish request until the topic holds every
  record (its high watermarks, which count only records the broker acknowledged with acks=all). Afterwards
  the database must hold no pending or failed delivery.
- drain: the events are stored first with no worker running; then the workers start, and the clock runs
  from the first record in the topic to the last. This is the delivery side alone.

Beside it, librdkafka's own producer (`kcat -P`, acks=all, idempotent, gzip) sends the same records to the
same broker.

Each measure runs `--rounds` times (3 by default; the rounds take every setup in turn), and the round with the
median rate is reported with every round's rate beside it. Beside each rate: the CPU per event of the API, the
workers, the broker and the whole machine, and the peak resident memory of the API and the workers.

Usage: python -m bench.kafka [--events 100000] [--workers 0,1,2] [--backends sqlite,postgresql] [--rounds 3]
[--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
from confluent_kafka import Producer

from bench.common import (
    backend_database,
    bench_server,
    cpu_seconds,
    cpu_share,
    machine_busy_seconds,
    peak_rss_mb,
    server_env,
    write_result,
)
from chargewire.catalog import load_event_types
from chargewire.devtools.kafka_broker import KafkaBroker
from tests.support.kafka_topics import TopicCounter
from tests.support.processes import CHARGEWIRE

PARTITIONS = 6
# Every count is a ListOffsets request the broker answers on the cores chargewire is measured on: every
# 20 ms it took the broker 0.11 cores above idle (about 9 µs per event at 12,000 events/s), every 50 ms at most
# half that. The clock may stop up to one interval late: at most 1% of a measure, against chargewire.
COUNT_INTERVAL_S = 0.05
PUBLISH_BATCH = 1000
WARM_UP_RECORDS = 300_000
WARM_UP_HEADERS = {
    "notification": "SessionMeterValuesNotification",
    "X-Timestamp": "2026-11-25T03:00:00.000000Z",
    "X-Tenant": "bench",
    "X-Webhook-Id": "sub_warmupwarmupwarmupwarmup0",
    "X-Webhook-Type": "SessionMeterValuesNotification",
    "webhook-timestamp": "1795575600",
}
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


def warm_up(broker: KafkaBroker, topic: str, count: int = WARM_UP_RECORDS) -> None:
    """Produce `count` records shaped like chargewire's (1 KB, a key, nine headers of which three differ per
    record) so that the broker's JIT has compiled its produce path before anything is measured.

    A freshly started broker spends about three times the CPU per record on its first few hundred thousand
    records that it spends once warm (16 against 5 µs, measured with records like these): without this, the
    first measure would pay the broker's warm-up on the cores chargewire is measured on, and the later ones not.
    """
    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap("PLAINTEXT"),
            "acks": "all",
            "enable.idempotence": True,
            "compression.type": "gzip",
            "compression.level": 1,
        }
    )
    for number, payload in enumerate(orjson.dumps(payload) for payload in one_kb_payloads(count)):
        unique = hashlib.sha256(payload + number.to_bytes(4)).hexdigest()
        headers = {**WARM_UP_HEADERS, "X-Signature": unique, "webhook-id": unique[:30], "webhook-signature": unique}
        while True:
            try:
                producer.produce(topic, payload, key=str(number % 500).encode(), headers=headers)
                break
            except BufferError:  # the local queue is full: let the broker catch up
                producer.poll(0.1)
    if producer.flush(120):
        raise RuntimeError("the broker did not acknowledge the warm-up records")


def kcat_rate(broker: KafkaBroker, topic: str, count: int, workdir: Path) -> dict[str, int]:
    """Records/s of `kcat -P` (librdkafka, acks=all, idempotent) sending `count` 1 KB records, and the broker's CPU."""
    lines = workdir / "records.jsonl"
    with lines.open("wb") as handle:
        for payload in one_kb_payloads(count):
            handle.write(orjson.dumps(payload) + b"\n")
    command = ["kcat", "-P", "-b", broker.bootstrap("PLAINTEXT"), "-t", topic, "-z", "gzip"]
    command += ["-X", "acks=all", "-X", "enable.idempotence=true", "-l", str(lines)]
    groups = {"broker": [broker.pid or 0]}
    cpu_before = cpu_seconds(groups)
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    seconds = time.perf_counter() - started
    broker_cores = cpu_share(cpu_before, cpu_seconds(groups), seconds)["broker"]
    return {
        "records_per_s": round(count / seconds),
        "broker_cpu_us_per_record": round(broker_cores * seconds / count * 1e6),
    }


def request_bodies(payloads: list[dict[str, Any]]) -> list[bytes]:
    """The publish requests' bodies, `PUBLISH_BATCH` events each: encoded before a clock starts, as a client's
    own work (0.2 s of CPU for 100,000 events) is not chargewire's."""
    return [orjson.dumps(payloads[i : i + PUBLISH_BATCH]) for i in range(0, len(payloads), PUBLISH_BATCH)]


async def publish_all(base_url: str, token: str, bodies: list[bytes]) -> None:
    """Publish the request `bodies` to the API over `PUBLISH_CONNECTIONS` connections."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
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


async def _pending(base_url: str, token: str) -> tuple[int, int]:
    """(pending, failed) deliveries, read from the queue-depth metric (which needs a metrics:read token)."""
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session, session.get(f"{base_url}/metrics", headers=headers) as response:
        text = await response.text()
        if response.status != 200:
            raise RuntimeError(f"/metrics answered {response.status}: {text}")
    depth = {}
    for line in text.splitlines():
        if line.startswith("chargewire_delivery_queue_depth{"):
            state = line.split('state="', 1)[1].split('"', 1)[0]
            depth[state] = int(float(line.split()[-1]))
    return depth["due"] + depth["scheduled"], depth["failed"]


def wait_for_records(counter: TopicCounter, count: int, timeout_s: float = 900) -> tuple[float, float]:
    """Poll the topic until it holds `count` records; returns when its first and its last record were seen."""
    deadline = time.perf_counter() + timeout_s
    first_seen = None
    while time.perf_counter() < deadline:
        held = counter.count()
        now = time.perf_counter()
        if held and first_seen is None:
            first_seen = now
        if held >= count:
            return first_seen or now, now
        time.sleep(COUNT_INTERVAL_S)
    raise TimeoutError(f"the topic holds {counter.count()} of {count} records after {timeout_s}s")


def start_workers(count: int, env: dict[str, str], workdir: Path) -> list[subprocess.Popen[bytes]]:
    """`count` worker processes, each logging to its own file."""
    workers = []
    for index in range(count):
        log = (workdir / f"worker-{index}.log").open("w")
        workers.append(subprocess.Popen([CHARGEWIRE, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT))
    return workers


def wait_until_delivering(workdir: Path, count: int, timeout_s: float = 60) -> None:
    """Wait for each worker's "delivering" log line: start-up (imports, connections) is not delivery work."""
    deadline = time.monotonic() + timeout_s
    logs = [workdir / f"worker-{index}.log" for index in range(count)]
    while not all("delivering" in log.read_text() for log in logs):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the workers did not start within {timeout_s}s; see {workdir}/worker-*.log")
        time.sleep(0.05)


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    """Stop the workers and wait for them."""
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait(60)


def settled(base_url: str, token: str) -> tuple[int, int]:
    """Wait until no delivery is pending; returns (pending, failed) then."""
    for _ in range(600):
        pending, failed = asyncio.run(_pending(base_url, token))
        if pending == 0:
            return pending, failed
        time.sleep(0.1)
    return asyncio.run(_pending(base_url, token))


def run_measure(
    backend: str, broker: KafkaBroker, payloads: list[dict[str, Any]], workers: int, *, drain: bool
) -> dict[str, Any]:
    """One measure on a fresh database and topic: end to end, or (drain) the delivery side alone.

    `workers` 0 means the worker inside `chargewire serve`, which has no drain measure: it starts with the API.
    """
    topic = f"bench-{backend}-{workers}w-{'drain' if drain else 'e2e'}-{uuid.uuid4().hex[:8]}"  # fresh each round
    broker.create_topic(topic, partitions=PARTITIONS)
    counter = TopicCounter(broker, topic, PARTITIONS)
    events = len(payloads)
    bodies = request_bodies(payloads)
    with tempfile.TemporaryDirectory() as tmp, backend_database(backend, Path(tmp)) as url:
        workdir = Path(tmp)
        serve_args = ("--no-worker",) if workers else ()
        with bench_server(url, workdir, *serve_args, env_overrides=WORKER_SETTINGS) as (base_url, token, api_pid):
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
            if drain and workers:
                asyncio.run(publish_all(base_url, token, bodies))
            processes = start_workers(workers, env, workdir)
            wait_until_delivering(workdir, workers)
            groups = {"api": [api_pid], "workers": [p.pid for p in processes], "broker": [broker.pid or 0]}
            try:
                cpu_before, busy_before = cpu_seconds(groups), machine_busy_seconds()
                started = time.perf_counter()
                if not drain:
                    asyncio.run(publish_all(base_url, token, bodies))
                published = time.perf_counter()
                first, last = wait_for_records(counter, events)
                cpu_after, busy_after = cpu_seconds(groups), machine_busy_seconds()
                peaks = peak_rss_mb({"api": [api_pid], "workers": groups["workers"]})
                pending, failed = settled(base_url, token)
            finally:
                stop_workers(processes)
                records = counter.count()
    clock_start = first if drain else started
    cores = cpu_share(cpu_before, cpu_after, last - started)
    cores["whole_machine"] = round((busy_after - busy_before) / (last - started), 2)
    result = {
        "events_per_s": round(events / (last - clock_start)),
        "seconds": round(last - clock_start, 2),
        "records_in_topic": records,
        "pending_after": pending,
        "failed": failed,
        # From the workers' start (drain) or the first publish to the last record: CPU per event by process.
        "cpu_us_per_event": {name: round(share * (last - started) / events * 1e6) for name, share in cores.items()},
        # Each process's high-water mark since it started; `serve` holds the worker too when there is none.
        "peak_rss_mb": peaks,
    }
    if not drain:
        result["publish_s"] = round(published - started, 2)
    return result


def run_round(backend: str, workers: int, broker: KafkaBroker, payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """One round of a setup on one backend: end to end, and the drain when the workers are processes of their own."""
    measures = {"end_to_end": run_measure(backend, broker, payloads, workers, drain=False)}
    if workers:
        measures["drain"] = run_measure(backend, broker, payloads, workers, drain=True)
    return measures


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median rate, and every round's rate beside it (an odd count has one median round)."""
    ordered = sorted(rounds, key=lambda measure: measure["events_per_s"])
    return {**ordered[(len(ordered) - 1) // 2], "events_per_s_rounds": [measure["events_per_s"] for measure in rounds]}


def setup_name(workers: int) -> str:
    """`serve` for the worker inside the API process, else `<n>_worker(s)`."""
    return f"{workers}_worker{'s' if workers > 1 else ''}" if workers else "serve"


def main() -> None:
    """Run chargewire on both backends and kcat against one broker; write bench/results/kafka.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument(
        "--workers", default="0,1,2", help="worker processes to measure, comma-separated; 0 = the worker in serve"
    )
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every measure; the median is reported")
    parser.add_argument("--quick", action="store_true", help="10,000 events, for a smoke check")
    args = parser.parse_args()
    events = 10_000 if args.quick else args.events
    worker_counts = [int(count) for count in args.workers.split(",")]
    if shutil.which("kcat") is None:
        raise SystemExit("kcat is missing: apt-get install -y kcat (make bench-kafka does this)")
    with KafkaBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        broker.create_topic("bench-warm-up", partitions=PARTITIONS)
        warm_up(broker, "bench-warm-up")
        broker.create_topic("bench-kcat", partitions=PARTITIONS)
        reference = kcat_rate(broker, "bench-kcat", events, Path(tmp))
        payloads = one_kb_payloads(events)
        setups = [(backend, workers) for backend in args.backends.split(",") for workers in worker_counts]
        # Rounds go over every setup in turn, so that a slow phase of the machine touches them all alike.
        rounds = [{setup: run_round(*setup, broker, payloads) for setup in setups} for _ in range(args.rounds)]
    results: dict[str, dict[str, Any]] = {}
    for backend, workers in setups:
        kinds = rounds[0][(backend, workers)]
        results.setdefault(backend, {})[setup_name(workers)] = {
            kind: median_round([each[(backend, workers)][kind] for each in rounds]) for kind in kinds
        }
    write_result(
        "kafka",
        {
            "payload_bytes": len(orjson.dumps(one_kb_payloads(1)[0])),
            "partitions": PARTITIONS,
            "compression": "gzip",
            "events": events,
            "rounds": args.rounds,
            "kcat": reference,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
