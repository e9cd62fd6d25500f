"""With `serve --no-worker` and two `chargewire worker` processes, one entity's Kafka records keep their
publishing order across broker faults (issue 24): the layout where the API and the workers are separate
processes that hear of each other's commits through the database, and share the stream and its retries."""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import pytest

from chargewire.devtools.kafka_broker import KafkaBroker
from chargewire.devtools.postgres import free_port
from tests.support import broker_faults as faults
from tests.support.kafka_topics import consume_topic, subscribe_kafka
from tests.support.processes import migrated_with_admin_token, running_server, start_worker, stop_process

pytestmark = pytest.mark.timeout(300)


class Publisher(threading.Thread):
    """Publishes meter values through the API, steadily and in bursts."""

    def __init__(self, api: httpx.Client) -> None:
        super().__init__(daemon=True)
        self._api = api
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self.published = 0
        self.failure: str | None = None

    def publish(self, count: int) -> None:
        with self._lock:
            response = self._api.post("/api/v1/events", json=faults.meter_values(self.published, count), timeout=60)
            if response.status_code != 202:
                self.failure = f"{response.status_code}: {response.text}"
                raise AssertionError(self.failure)
            self.published += count

    def run(self) -> None:
        while not self._halt.is_set() and self.failure is None:
            self.publish(faults.STEADY_BATCH)
            time.sleep(faults.STEADY_EVERY_S)

    def stop(self) -> None:
        self._halt.set()
        self.join(60)
        assert self.failure is None, f"a publish failed: {self.failure}"


# The broker killed runs in `make test` on PostgreSQL, the store several workers share (its only stream under a
# broker fault in `make test`); SQLite's stream meets the same fault in `make test` with `serve` delivering in its
# own process, the default layout (tests/integration/dispatch/test_kafka_order_across_faults.py), and with worker
# processes here in `make test-long`, as do frozen and cut, which exercise the same fences.
@pytest.mark.parametrize(
    "fault", [fault if fault == "killed" else pytest.param(fault, marks=pytest.mark.long) for fault in faults.FAULTS]
)
@pytest.mark.parametrize("backend", [pytest.param("sqlite", marks=pytest.mark.long), "postgresql"], indirect=True)
def test_every_keys_records_reach_the_topic_in_publishing_order_when_the_broker_fails_with_worker_processes(
    cli_env: dict[str, str], kafka_broker: KafkaBroker, fault: str
) -> None:
    env = {
        **cli_env,
        "CHARGEWIRE_KAFKA_MESSAGE_TIMEOUT_S": str(faults.MESSAGE_TIMEOUT_S),
        "CHARGEWIRE_KAFKA_CONNECT_TIMEOUT_S": "1",
        "CHARGEWIRE_KAFKA_STREAM_BATCH_SIZE": "200",
        "CHARGEWIRE_RETRY_SCHEDULE_S": ",".join(["0", *[str(faults.RETRY_S)] * 20]),
        "CHARGEWIRE_DELIVERY_ALLOW_NETWORKS": "127.0.0.0/8",
    }
    topic = f"order-worker-{fault}-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=faults.PARTITIONS)
    token = migrated_with_admin_token(env, "order")
    port = free_port()
    with running_server(env, port, "--no-worker"):
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"})
        subscribe_kafka(api, kafka_broker, topic)
        workers = [start_worker(env), start_worker(env)]
        try:
            publisher = Publisher(api)
            publisher.start()
            time.sleep(2.0)
            publisher.publish(faults.BURST)
            time.sleep(0.05)  # the burst is being produced when the fault strikes
            faults.FAULTS[fault](kafka_broker)
            time.sleep(1.0)
            publisher.publish(faults.BURST)  # and one while the failed records wait for their retries
            time.sleep(1.0)
            publisher.stop()
            records = consume_topic(kafka_broker, topic, distinct=publisher.published, timeout_s=120)
        finally:
            for worker in workers:
                stop_process(worker)
            api.close()

    assert sorted({json.loads(value)["evseId"] for _key, value in records}) == list(range(publisher.published))
    assert faults.overtaken(records) == {}
