"""A real `serve` on PostgreSQL answers a publish 503 at its deadline while another connection holds the lock the
publish needs; the publish commits after that answer, and its retry with the same `Idempotency-Key` gets the
stored event ids: one event, one delivery."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import asyncpg
import httpx

from chargewire.catalog import load_event_types
from chargewire.devtools.postgres import PostgresCluster, free_port
from tests.conftest import POSTGRES_TEMPLATE
from tests.support.ocpp import eventually
from tests.support.processes import running_server, subscribe_webhook
from tests.support.receiver_kit import prepared_service
from tests.support.threaded_receiver import receiver_in_thread

EXAMPLE = load_event_types()["HardwareStatusNotification"].example


async def _stored(dsn: str) -> tuple[int, int]:
    """How many events and deliveries the database holds."""
    connection = await asyncpg.connect(dsn)
    try:
        row = await connection.fetchrow("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM deliveries)")
    finally:
        await connection.close()
    assert row is not None
    return int(row[0]), int(row[1])


async def test_a_retry_with_the_key_of_a_publish_that_committed_after_its_503_stores_and_delivers_it_once(
    postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    url = postgres_cluster.create_database(f"late_commit_{uuid.uuid4().hex[:8]}", template=POSTGRES_TEMPLATE)
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    env, token = prepared_service(tmp_path, url)
    port = free_port()
    headers = {"Authorization": f"Bearer {token}"}
    keyed = {"Idempotency-Key": str(uuid.uuid4())}
    with receiver_in_thread() as receiver, running_server(env, port):
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, headers=headers, timeout=30) as api:
            subscribe_webhook(api, receiver.url("/late"), "HardwareStatusNotification")
        holder = await asyncpg.connect(dsn)
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
            try:
                # Another connection holds the event numbering, which every publish's transaction takes.
                held = holder.transaction()
                await held.start()
                await holder.execute("SELECT last_seq FROM event_sequence FOR UPDATE")
                timed_out = await client.post("/api/v1/events", json=[EXAMPLE], headers=keyed)
                await held.rollback()
            finally:
                await holder.close()
            retried = await client.post("/api/v1/events", json=[EXAMPLE], headers=keyed)
        await eventually(lambda: receiver.on_path("/late"), timeout_s=30)
        stored = await _stored(dsn)

    assert timed_out.status_code == 503, timed_out.text
    assert retried.status_code == 202, retried.text
    assert retried.headers["Idempotent-Replayed"] == "true", "the first publish did not commit after its 503"
    assert stored == (1, 1)
    [delivered] = receiver.on_path("/late")
    assert json.loads(delivered.body) == EXAMPLE
