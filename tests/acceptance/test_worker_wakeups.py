"""`chargewire serve --no-worker` wakes a separate `chargewire worker` at once: on PostgreSQL by LISTEN/NOTIFY, on
SQLite by the signal to the worker's commit watcher (with the watcher's own look as its fallback)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from chargewire.catalog import load_event_types
from chargewire.devtools.postgres import free_port
from tests.support.processes import (
    CHARGEWIRE,
    running_server,
    stop_process,
    subscribe_webhook,
    token_made_in_process,
)
from tests.support.threaded_receiver import receiver_in_thread

# Far longer than WITHIN_S: an event that arrives in time was not found by the poll.
POLL_S = 30
WITHIN_S = 10
EVENTS = 3
HARDWARE = load_event_types()["HardwareStatusNotification"].example


@contextlib.contextmanager
def running_worker(env: dict[str, str], log: Path, ready: str) -> Iterator[subprocess.Popen[bytes]]:
    """`chargewire worker`, its output in `log`, started once it logged `ready`; stopped afterwards."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            [CHARGEWIRE, "worker"], env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while ready not in log.read_text():
            assert process.poll() is None, f"worker exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"worker never listened: {log.read_text()[-3000:]}"
            time.sleep(0.05)
        yield process
    finally:
        stop_process(process)


def _wait_for_arrivals(arrived: Callable[[], int], count: int, log: Path) -> None:
    deadline = time.monotonic() + WITHIN_S
    while arrived() < count:
        assert time.monotonic() < deadline, f"event {count} did not arrive in time; worker: {log.read_text()[-3000:]}"
        time.sleep(0.05)


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"], indirect=True)
def test_an_event_published_through_the_api_reaches_a_separate_worker_without_waiting_for_its_poll(
    backend: str, migrated_env: dict[str, str], tmp_path: Path
) -> None:
    # A SQLite worker's commit watcher starts with its delivery loop, within the pause before each publish.
    ready = "listening for wake-ups" if backend == "postgresql" else " delivering"
    env = {
        **migrated_env,
        "CHARGEWIRE_WORKER_POLL_INTERVAL_S": str(POLL_S),
        "CHARGEWIRE_DELIVERY_ALLOW_NETWORKS": "127.0.0.0/8",
    }
    token = token_made_in_process(env, "admin", "wake").text
    port = free_port()
    worker_log = tmp_path / "worker.log"
    with (
        receiver_in_thread() as receiver,
        running_server(env, port, "--no-worker"),
        running_worker(env, worker_log, ready),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}) as api,
    ):
        subscribe_webhook(api, receiver.url("/wake"), "HardwareStatusNotification")
        for number in range(1, EVENTS + 1):
            # Let the worker finish the claims its start-up or its last delivery set off, so that only a
            # wake-up can make it claim again before its next poll.
            time.sleep(1)
            published = api.post("/api/v1/events", json=[{**HARDWARE, "chargePointId": number}])
            assert published.status_code == 202, published.text
            _wait_for_arrivals(lambda: len(receiver.on_path("/wake")), number, worker_log)
