"""`serve` and `chargewire worker` ride out a PostgreSQL crash and restart: the API answers 503 meanwhile, delivery
resumes by itself afterwards, and a stop signal ends them cleanly during and after the outage."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chargewire.catalog import load_event_types
from chargewire.devtools.kafka_broker import KafkaBroker
from chargewire.devtools.postgres import PostgresCluster, free_port, throwaway_cluster
from tests.conftest import TEST_SECRET_KEY, migrate_database
from tests.support.faults import postgres_down
from tests.support.kafka_topics import TopicCounter, consume_topic, subscribe_kafka
from tests.support.processes import (
    cli,
    signal_and_wait,
    start_logged,
    subscribe_webhook,
    token_made_in_process,
    wait_until_serving,
)
from tests.support.receiver import Receiver
from tests.support.threaded_receiver import receiver_in_thread
from tests.support.waiting import wait_until

EXAMPLE = load_event_types()["HardwareStatusNotification"].example
METER_VALUES = load_event_types()["SessionMeterValuesNotification"].example
PUBLISH_EVERY_S = 0.05
# Half the default lease (60 s): a stream that waited for the lease its outage left behind would take longer.
STREAMS_ON_WITHIN_S = 30
_databases = iter(range(1_000_000))
TEMPLATE = "outage_template"


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster of this module's own (its tests stop and start it), with a migrated template database."""
    with throwaway_cluster() as running:
        asyncio.run(migrate_database(running.create_database(TEMPLATE)))
        yield running


@pytest.fixture
def env(cluster: PostgresCluster, tmp_path: Path) -> dict[str, str]:
    """Settings for the processes under test: a fresh copy of the migrated template on the module's cluster."""
    return {
        "CHARGEWIRE_DATABASE_URL": cluster.create_database(f"outage_{next(_databases)}", TEMPLATE, durable=True),
        "CHARGEWIRE_SECRET_KEY": TEST_SECRET_KEY,
        "CHARGEWIRE_DATA_DIR": str(tmp_path / "data"),
        "CHARGEWIRE_CONFIG": str(tmp_path / "absent.toml"),
        "CHARGEWIRE_DELIVERY_ALLOW_NETWORKS": "127.0.0.0/8",
        "CHARGEWIRE_WORKER_LEASE_S": "3",
    }


def _api(env: dict[str, str], port: int) -> httpx.Client:
    token = token_made_in_process(env, "admin", "outage").text
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _publish(api: httpx.Client, first: int, count: int) -> None:
    """Publish `count` events; right after a restart the first tries may still meet the outage (503)."""
    batch = [{**EXAMPLE, "chargePointId": first + i} for i in range(count)]
    deadline = time.monotonic() + 60
    while (response := api.post("/api/v1/events", json=batch)).status_code == 503:
        assert time.monotonic() < deadline, "the API still answers 503 a minute after the database came back"
        time.sleep(0.5)
    assert response.status_code == 202, response.text


def _wait_for_points(receiver: Receiver, path: str, expected: set[int], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while not expected <= {json.loads(request.body)["chargePointId"] for request in receiver.on_path(path)}:
        assert time.monotonic() < deadline, "not every event was delivered"
        time.sleep(0.2)


def _wait_until_ready(api: httpx.Client, timeout_s: float = 20) -> None:
    """Wait for /readyz to answer 200: each loop reports healthy once its backoff (at most 5 s) has run out."""
    deadline = time.monotonic() + timeout_s
    while (ready := api.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, ready.text
        time.sleep(0.2)


def test_serve_answers_503_during_a_postgresql_restart_and_then_delivers_new_events(
    env: dict[str, str], cluster: PostgresCluster, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    with receiver_in_thread() as receiver:
        server = start_logged(env, log, "serve", "--host", "127.0.0.1", "--port", str(port))
        try:
            wait_until_serving(f"http://127.0.0.1:{port}", server, log)
            with _api(env, port) as api:
                subscribe_webhook(api, receiver.url("/outage"), "HardwareStatusNotification")
                _publish(api, 0, 5)
                _wait_for_points(receiver, "/outage", set(range(5)))

                with postgres_down(cluster):
                    refused = api.post("/api/v1/events", json=[EXAMPLE], timeout=10)
                    listed = api.get("/public-api/notifications/v2.0", timeout=10)
                    ready = api.get("/readyz", timeout=10)
                    alive = api.get("/healthz", timeout=10)
                    time.sleep(2)  # long enough for every loop of the worker to meet the outage

                assert refused.status_code == 503, refused.text
                assert refused.headers["Retry-After"]
                assert listed.status_code == 503
                assert ready.status_code == 503
                assert ready.json()["checks"]["database"]["ok"] is False
                assert alive.status_code == 200

                _publish(api, 100, 50)
                _wait_for_points(receiver, "/outage", set(range(100, 150)))
                _wait_until_ready(api)
        finally:
            code = signal_and_wait(server, signal.SIGTERM)
    output = log.read_text()
    assert code == 0, output[-3000:]
    assert "retrying with backoff until it clears" in output
    assert "recovered after" in output


def test_worker_rides_out_a_postgresql_restart_and_stops_cleanly_on_sigint(
    env: dict[str, str], cluster: PostgresCluster, tmp_path: Path
) -> None:
    port = free_port()
    serve_log, worker_log = tmp_path / "serve.log", tmp_path / "worker.log"
    with receiver_in_thread() as receiver:
        server = start_logged(env, serve_log, "serve", "--host", "127.0.0.1", "--port", str(port), "--no-worker")
        worker: subprocess.Popen[bytes] | None = None
        try:
            wait_until_serving(f"http://127.0.0.1:{port}", server, serve_log)
            api = _api(env, port)
            subscribe_webhook(api, receiver.url("/worker"), "HardwareStatusNotification")
            worker = start_logged(env, worker_log, "worker")
            _publish(api, 0, 5)
            _wait_for_points(receiver, "/worker", set(range(5)))

            with postgres_down(cluster):
                time.sleep(3)
            assert worker.poll() is None, worker_log.read_text()[-3000:]

            _publish(api, 100, 50)
            _wait_for_points(receiver, "/worker", set(range(100, 150)))
            api.close()
            worker_code = signal_and_wait(worker, signal.SIGINT)
        finally:
            if worker is not None and worker.poll() is None:
                worker.kill()
            signal_and_wait(server, signal.SIGTERM)
    assert worker_code == 0, worker_log.read_text()[-3000:]


class _SteadyMeterValues(threading.Thread):
    """Publishes one meter value every `PUBLISH_EVERY_S` until stopped, through outages; keeps the accepted ones'
    `evseId`s (each event's own number)."""

    def __init__(self, api: httpx.Client) -> None:
        super().__init__(daemon=True)
        self._api = api
        self._halt = threading.Event()
        self.accepted: set[int] = set()

    def run(self) -> None:
        number = 0
        while not self._halt.wait(PUBLISH_EVERY_S):
            with contextlib.suppress(httpx.HTTPError):  # refused or cut off by the outage: not accepted
                if self._api.post("/api/v1/events", json=[{**METER_VALUES, "evseId": number}]).status_code == 202:
                    self.accepted.add(number)
            number += 1

    def stop(self) -> set[int]:
        """Stop publishing; the numbers of the events the API accepted."""
        self._halt.set()
        self.join(30)
        return self.accepted


def test_a_kafka_subscription_streams_on_as_soon_as_postgresql_is_back_not_a_lease_later(
    env: dict[str, str], cluster: PostgresCluster, tmp_path: Path, kafka_broker: KafkaBroker
) -> None:
    # The default lease: a stream's lease the outage kept from being handed back would hold the topic this long.
    env = {**env, "CHARGEWIRE_WORKER_LEASE_S": "60"}
    topic = f"outage-{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topic(topic, partitions=1)
    in_topic = TopicCounter(kafka_broker, topic, 1)
    port = free_port()
    log = tmp_path / "serve.log"
    server = start_logged(env, log, "serve", "--host", "127.0.0.1", "--port", str(port))
    try:
        wait_until_serving(f"http://127.0.0.1:{port}", server, log)
        with _api(env, port) as api:
            subscribe_kafka(api, kafka_broker, topic)
            publisher = _SteadyMeterValues(api)
            publisher.start()
            wait_until(lambda: in_topic.count() >= 10, "the stream producing", 60)
            with postgres_down(cluster):  # the stream is running: its next read meets the outage
                time.sleep(2)
            back, accepted_before = time.monotonic(), len(publisher.accepted)
            wait_until(lambda: len(publisher.accepted) > accepted_before + 10, "publishes accepted again", 60)
            accepted = publisher.stop()
            wait_until(lambda: in_topic.count() >= len(accepted), "every accepted event on the topic", 60)
            streamed_on_after_s = time.monotonic() - back
            records = consume_topic(kafka_broker, topic, distinct=len(accepted))
    finally:
        signal_and_wait(server, signal.SIGTERM)
    assert accepted <= {json.loads(value)["evseId"] for _key, value in records}
    assert streamed_on_after_s < STREAMS_ON_WITHIN_S, log.read_text()[-3000:]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_serve_exits_zero_on_a_stop_signal_while_postgresql_is_down(
    env: dict[str, str], cluster: PostgresCluster, tmp_path: Path, signum: int
) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    server = start_logged(env, log, "serve", "--host", "127.0.0.1", "--port", str(port))
    try:
        wait_until_serving(f"http://127.0.0.1:{port}", server, log)
        with postgres_down(cluster):
            time.sleep(2)  # every loop meets the outage
            code = signal_and_wait(server, signum)
    finally:
        if server.poll() is None:
            server.kill()
    assert code == 0, log.read_text()[-3000:]


def _signed_in(env: dict[str, str], port: int) -> httpx.Client:
    """A browser-like client signed in to the back office as a new operator."""
    cli(env, "users", "create", "--email", "ops@example.com", "--password", "a long enough password")
    base = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base, timeout=30, headers={"Origin": base})
    form = client.get("/backoffice/sign-in").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf is not None
    signed_in = client.post(
        "/backoffice/sign-in",
        data={"csrf_token": csrf.group(1), "email": "ops@example.com", "password": "a long enough password"},
    )
    assert signed_in.status_code in (200, 303), signed_in.text
    return client


def test_the_back_office_and_metrics_show_a_postgresql_outage_as_such(
    env: dict[str, str], cluster: PostgresCluster, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    server = start_logged(env, log, "serve", "--host", "127.0.0.1", "--port", str(port))
    try:
        wait_until_serving(f"http://127.0.0.1:{port}", server, log)
        browser = _signed_in(env, port)
        assert "Workers" in browser.get("/backoffice/overview").text
        scraper_token = token_made_in_process(env, "metrics:read", "scraper").text
        scraper = {"Authorization": f"Bearer {scraper_token}"}
        assert browser.get("/metrics", headers=scraper).status_code == 200
        with postgres_down(cluster):
            page = browser.get("/backoffice/overview")
            figures = browser.get("/backoffice/api/overview")
            metrics = browser.get("/metrics", headers=scraper)
        browser.close()
    finally:
        code = signal_and_wait(server, signal.SIGTERM)
    assert page.status_code == 503
    assert "Database unavailable" in page.text
    assert page.headers["Retry-After"]
    assert figures.status_code == 503
    assert metrics.status_code == 200
    assert "chargewire_database_up 0.0" in metrics.text
    assert code == 0, log.read_text()[-3000:]
