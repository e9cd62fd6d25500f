"""Killing the delivery worker again and again loses nothing: every event reaches the receiver; nor does killing
`serve` while a delivery its publish handed to its own worker is in flight."""

from __future__ import annotations

import json
import random
import signal
import time

import httpx

from chargewire.catalog import load_event_types
from chargewire.devtools.postgres import free_port
from tests.support.processes import running_server, start_worker, subscribe_webhook, token_made_in_process
from tests.support.receiver import Reply, in_turn
from tests.support.threaded_receiver import receiver_in_thread

EVENTS = 3000
BATCH = 250
KILLS = 6
LEASE_S = 2
MAX_IN_FLIGHT = 64


def test_every_event_arrives_although_the_worker_is_killed_repeatedly(migrated_env: dict[str, str]) -> None:
    env = {
        **migrated_env,
        "CHARGEWIRE_WORKER_LEASE_S": str(LEASE_S),
        "CHARGEWIRE_WORKER_MAX_IN_FLIGHT": str(MAX_IN_FLIGHT),
        "CHARGEWIRE_DELIVERY_ALLOW_NETWORKS": "127.0.0.0/8",
    }
    token = token_made_in_process(env, "admin", "crash").text
    port = free_port()
    example = load_event_types()["HardwareStatusNotification"].example
    rng = random.Random(5)
    with receiver_in_thread() as receiver, running_server(env, port, "--no-worker"):
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"})
        subscribe_webhook(api, receiver.url("/crash"), "HardwareStatusNotification")
        for start in range(0, EVENTS, BATCH):
            batch = [{**example, "chargePointId": start + i} for i in range(BATCH)]
            assert api.post("/api/v1/events", json=batch, timeout=60).status_code == 202

        for _ in range(KILLS):
            before = len(receiver.on_path("/crash"))
            worker = start_worker(env)
            # Kill it mid-run: once it is delivering (start-up time varies with load), at a random moment.
            deadline = time.monotonic() + 60
            while len(receiver.on_path("/crash")) == before and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.3))
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
        kills_done_at = len(receiver.on_path("/crash"))
        last = start_worker(env)
        try:
            deadline = time.monotonic() + 180
            while len({r.headers["webhook-id"] for r in receiver.on_path("/crash")}) < EVENTS:
                assert time.monotonic() < deadline, "not every event arrived"
                time.sleep(0.2)
        finally:
            last.send_signal(signal.SIGTERM)
            last.wait(30)
        api.close()

    received = receiver.on_path("/crash")
    ids = [request.headers["webhook-id"] for request in received]
    point_ids = {json.loads(request.body)["chargePointId"] for request in received}
    assert point_ids == set(range(EVENTS))
    duplicates = len(ids) - len(set(ids))
    # Only what was in flight when a worker died can arrive twice: at most one batch per kill.
    assert duplicates <= KILLS * MAX_IN_FLIGHT
    assert kills_done_at > 0, "the killed workers delivered nothing; the test did not exercise a crash"


def test_a_delivery_handed_off_at_publish_arrives_once_more_after_serve_is_killed_before_the_reply(
    migrated_env: dict[str, str],
) -> None:
    env = {
        **migrated_env,
        "CHARGEWIRE_WORKER_LEASE_S": str(LEASE_S),
        "CHARGEWIRE_DELIVERY_ALLOW_NETWORKS": "127.0.0.0/8",
    }
    token = token_made_in_process(env, "admin", "crash").text
    port = free_port()
    example = load_event_types()["HardwareStatusNotification"].example
    with receiver_in_thread() as receiver:
        # The first attempt is answered late: serve is killed the moment it arrives, with it in flight and nothing
        # recorded.
        url = receiver.on("/handed", in_turn(Reply(delay_s=1), Reply()))
        with running_server(env, port) as server:
            api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"})
            subscribe_webhook(api, url, "HardwareStatusNotification")
            assert api.post("/api/v1/events", json=[example], timeout=60).status_code == 202
            deadline = time.monotonic() + 30
            while receiver.arrived("/handed") == 0:
                assert time.monotonic() < deadline, "serve never sent the delivery"
                time.sleep(0.02)
            server.send_signal(signal.SIGKILL)
            server.wait(10)
            api.close()
        worker = start_worker(env)
        try:
            deadline = time.monotonic() + 60
            while receiver.arrived("/handed") < 2 or not receiver.on_path("/handed"):
                assert time.monotonic() < deadline, "the delivery never arrived after the kill"
                time.sleep(0.1)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(30)
        ids = {request.headers["webhook-id"] for request in receiver.on_path("/handed")}
        assert receiver.arrived("/handed") == 2
    assert len(ids) == 1
