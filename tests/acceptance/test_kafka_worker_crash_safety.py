"""Killing a worker that streams to Kafka, again and again, under steady publishing, loses nothing: every event
reaches the topic in order per key, and the delivery log shows each one delivered once."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import httpx

from chargewire.catalog import load_event_types
from chargewire.devtools.kafka_broker import KafkaBroker
from chargewire.devtools.postgres import free_port
from tests.support.kafka_topics import TopicCounter, consume_topic, subscribe_kafka
from tests.support.processes import migrated_with_admin_token, running_server, start_logged, start_worker, stop_process
from tests.support.waiting import wait_until

KILLS = 5
LEASE_S = 2
PARTITIONS = 3
SESSIONS = 12  # the record keys: a SessionMeterValuesNotification is keyed by its sessionId
STREAM_BATCH = 100
PUBLISH_BATCH = 50
PUBLISH_EVERY_S = 0.1
# A killed worker may have sent, but not yet recorded, 3 batches awaiting acks and 6 awaiting their recording:
# the next worker sends those again. Anything more would mean it went back further than its last recorded batch.
RESENT_PER_KILL = 9 * STREAM_BATCH
METER_VALUES = load_event_types()["SessionMeterValuesNotification"].example
# Half the default lease (60 s): a killed worker's stream that waited for its lease would take longer.
TAKEN_OVER_WITHIN_S = 30


class SteadyPublisher(threading.Thread):
    """Publishes batches of meter values until stopped; each event's `evseId` is its place in publishing order."""

    def __init__(self, api: httpx.Client) -> None:
        super().__init__(daemon=True)
        self._api = api
        self._halt = threading.Event()
        self.event_ids: list[str] = []
        self.failure: str | None = None

    def run(self) -> None:
        published = 0
        while not self._halt.is_set():
            batch = [
                {**METER_VALUES, "sessionId": n % SESSIONS, "evseId": n}
                for n in range(published, published + PUBLISH_BATCH)
            ]
            response = self._api.post("/api/v1/events", json=batch, timeout=60)
            if response.status_code != 202:
                self.failure = f"{response.status_code}: {response.text}"
                return
            self.event_ids += response.json()["data"]
            published += PUBLISH_BATCH
            time.sleep(PUBLISH_EVERY_S)

    def stop(self) -> None:
        self._halt.set()
        self.join(60)
        assert self.failure is None, f"a publish failed: {self.failure}"


def _delivery_log(api: httpx.Client, subscription_id: str) -> list[dict[str, str]]:
    """Every delivery of the subscription, page by page."""
    deliveries: list[dict[str, str]] = []
    params: dict[str, str | int] = {"subscription": subscription_id, "per_page": 100}
    while True:
        page = api.get("/api/v1/deliveries", params=params).json()
        deliveries += page["data"]
        if not page["meta"]["next_cursor"]:
            return deliveries
        params["cursor"] = page["meta"]["next_cursor"]


def test_every_event_reaches_the_topic_in_order_per_key_although_the_worker_is_killed_repeatedly(
    cli_env: dict[str, str], kafka_broker: KafkaBroker
) -> None:
    env = {
        **cli_env,
        "CHARGEWIRE_WORKER_LEASE_S": str(LEASE_S),
        "CHARGEWIRE_KAFKA_STREAM_BATCH_SIZE": str(STREAM_BATCH),
        "CHARGEWIRE_DELIVERY_ALLOW_NETWORKS": "127.0.0.0/8",
    }
    topic = f"crash-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=PARTITIONS)
    token = migrated_with_admin_token(env, "crash")
    port = free_port()
    rng = random.Random(7)
    in_topic = TopicCounter(kafka_broker, topic, PARTITIONS)
    with running_server(env, port, "--no-worker"):
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"})
        subscription_id = subscribe_kafka(api, kafka_broker, topic)
        publisher = SteadyPublisher(api)
        publisher.start()
        for _ in range(KILLS):
            before = in_topic.count()
            worker = start_worker(env)
            # Kill it mid-stream: once it is producing (after start-up and the dead one's lease), at a random moment.
            deadline = time.monotonic() + 60
            while in_topic.count() == before and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.3))
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
        publisher.stop()
        kills_done_at = in_topic.count()
        published = len(publisher.event_ids)
        last = start_worker(env)
        try:
            records = consume_topic(kafka_broker, topic, distinct=published, timeout_s=180)
            deadline = time.monotonic() + 60
            while len(log := _delivery_log(api, subscription_id)) < published and time.monotonic() < deadline:
                time.sleep(0.5)
        finally:
            last.send_signal(signal.SIGTERM)
            last.wait(30)
        api.close()

    assert kills_done_at > 0, "the killed workers produced nothing; the test did not exercise a crash"
    places_by_key: dict[bytes, list[int]] = defaultdict(list)
    for key, value in records:
        places_by_key[key].append(json.loads(value)["evseId"])
    assert sorted({place for places in places_by_key.values() for place in places}) == list(range(published))
    for places in places_by_key.values():
        first_arrivals = list(dict.fromkeys(places))
        assert first_arrivals == sorted(first_arrivals), "a key's events overtook each other"
    assert len(records) - published <= KILLS * RESENT_PER_KILL
    assert sorted(delivery["eventId"] for delivery in log) == sorted(publisher.event_ids)
    assert {delivery["status"] for delivery in log} == {"delivered"}


def test_a_killed_workers_stream_goes_on_through_another_worker_long_before_its_lease_runs_out(
    cli_env: dict[str, str], kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    env = {
        **cli_env,
        "CHARGEWIRE_KAFKA_STREAM_BATCH_SIZE": str(STREAM_BATCH),
        "CHARGEWIRE_DELIVERY_ALLOW_NETWORKS": "127.0.0.0/8",
    }  # the default lease, 60 s
    topic = f"takeover-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=PARTITIONS)
    token = migrated_with_admin_token(env, "takeover")
    port = free_port()
    in_topic = TopicCounter(kafka_broker, topic, PARTITIONS)
    survivor_log = tmp_path / "survivor.log"
    with running_server(env, port, "--no-worker"):
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"})
        subscribe_kafka(api, kafka_broker, topic)
        holder = start_worker(env)
        publisher = SteadyPublisher(api)
        publisher.start()
        wait_until(lambda: in_topic.count() > 0, "the first worker streaming", 60)
        # Started once the first holds the stream: steady news keeps it there until it dies.
        survivor = start_logged(env, survivor_log, "worker")
        try:
            wait_until(lambda: " delivering" in survivor_log.read_text(), "the second worker delivering", 60)
            holder.send_signal(signal.SIGKILL)
            holder.wait(10)
            killed_at, on_topic = time.monotonic(), in_topic.count()
            wait_until(lambda: in_topic.count() > on_topic + 3 * PUBLISH_BATCH, "the stream going on", 90)
            taken_over_after_s = time.monotonic() - killed_at
            publisher.stop()
            published = len(publisher.event_ids)
            records = consume_topic(kafka_broker, topic, distinct=published, timeout_s=120)
        finally:
            stop_process(survivor)
        api.close()

    assert taken_over_after_s < TAKEN_OVER_WITHIN_S, survivor_log.read_text()[-3000:]
    assert {json.loads(value)["evseId"] for _key, value in records} == set(range(published))
