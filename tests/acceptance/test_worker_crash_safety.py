"""Killing the delivery worker again and again loses nothing: every event reaches the receiver; nor does killing
`serve` while a delivery its publish handed to its own worker is in flight; nor killing a worker that `serve
--no-worker` assigned deliveries to, which another worker sends once that assignment's short lease runs out."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections import Counter

import asyncpg
import httpx
import pytest

from chargewire.catalog import load_event_types
from chargewire.devtools.postgres import free_port
from tests.support.processes import (
    running_server,
    start_worker,
    stop_process,
    subscribe_webhook,
    token_made_in_process,
)
from tests.support.receiver import Received, Reply, in_turn
from tests.support.threaded_receiver import receiver_in_thread
from tests.support.waiting import wait_until

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


ASSIGNED = 8
# Far below the 60 s of `worker_lease_s`: an assignment's lease is the attempt's (1 s), 5 s for its record and a 3 s
# start window.
REDELIVERED_WITHIN_S = 20


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_what_was_assigned_to_a_killed_worker_reaches_the_receiver_through_the_other_long_before_worker_lease_s(
    migrated_env: dict[str, str],
) -> None:
    env = {
        **migrated_env,
        "CHARGEWIRE_WEBHOOK_TIMEOUT_S": "1",
        # One attempt at a time: the first is in flight when the worker dies, the others wait in its memory.
        "CHARGEWIRE_WORKER_MAX_IN_FLIGHT_PER_SUBSCRIPTION": "1",
        "CHARGEWIRE_DELIVERY_ALLOW_NETWORKS": "127.0.0.0/8",
    }
    dsn = env["CHARGEWIRE_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    token = token_made_in_process(env, "admin", "assigned").text
    port = free_port()
    first: list[str] = []

    def hang_first(request: Received, count: int) -> Reply:
        # Answered after the worker died: in flight when it was killed.
        if count == 0:
            first.append(request.headers["webhook-id"])
            return Reply(delay_s=3)
        return Reply()

    # Started beside serve: their start-ups overlap.
    workers = [start_worker(env) for _ in range(2)]
    try:
        with receiver_in_thread() as receiver, running_server(env, port, "--no-worker"):
            api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"})
            subscribe_webhook(api, receiver.url("/warm"), "BootNotification")
            subscribe_webhook(api, receiver.on("/assigned", hang_first), "HardwareStatusNotification")
            wait_until(lambda: asyncio.run(_listening(dsn)) == 2, "the workers listening", 60)
            # The first publish has serve read which workers listen (it goes due): the ones after it are assigned.
            boot = load_event_types()["BootNotification"].example
            assert api.post("/api/v1/events", json=[boot], timeout=60).status_code == 202
            wait_until(lambda: receiver.on_path("/warm"), "the first event")
            example = load_event_types()["HardwareStatusNotification"].example
            batch = [{**example, "chargePointId": point} for point in range(ASSIGNED)]
            assert api.post("/api/v1/events", json=batch, timeout=60).status_code == 202
            owner, pid = asyncio.run(_assigned_to(dsn))
            wait_until(lambda: receiver.arrived("/assigned") > 0, f"a first send by worker {owner}")
            os.kill(pid, signal.SIGKILL)
            wait_until(
                lambda: len({r.headers["webhook-id"] for r in receiver.on_path("/assigned")}) == ASSIGNED,
                "the killed worker's deliveries through the other",
                REDELIVERED_WITHIN_S,
            )
            api.close()
    finally:
        for worker in workers:
            stop_process(worker)
    arrivals = Counter(request.headers["webhook-id"] for request in receiver.on_path("/assigned"))
    # Sent twice only what was in flight when its worker died (by the other once its lease ran out).
    assert [webhook_id for webhook_id, count in arrivals.items() if count > 1] in ([], first)


async def _listening(dsn: str) -> int:
    """How many workers beat and listen for wake-ups: those serve assigns to."""
    connection = await asyncpg.connect(dsn)
    try:
        return int(
            await connection.fetchval(
                "SELECT count(*) FROM worker_heartbeats h WHERE h.stopped_at IS NULL AND EXISTS (SELECT 1 FROM "
                "pg_stat_activity a WHERE a.application_name = 'chargewire wake-up listener ' || h.worker_id)"
            )
        )
    finally:
        await connection.close()


async def _assigned_to(dsn: str) -> tuple[str, int]:
    """The worker every HardwareStatusNotification delivery was assigned to (leased, untouched since the publish),
    and its pid."""
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT d.lease_owner, h.pid FROM deliveries d LEFT JOIN worker_heartbeats h ON h.worker_id = d.lease_owner"
            " WHERE d.event_name = 'HardwareStatusNotification' AND d.updated_at = d.created_at"
        )
    finally:
        await connection.close()
    assert len(rows) == ASSIGNED, f"not assigned: {rows}"
    assert len({tuple(row) for row in rows}) == 1, f"not assigned to one worker: {rows}"
    return str(rows[0][0]), int(rows[0][1])
