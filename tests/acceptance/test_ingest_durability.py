"""Events answered with 202 survive a SIGKILL of the server right after the response."""

from __future__ import annotations

import asyncio
import signal

import httpx

from chargewire.catalog import load_event_types
from chargewire.devtools.postgres import free_port
from chargewire.store.database import create_database
from chargewire.store.event_store import EventStore
from tests.support.processes import running_server, token_made_in_process

BATCHES = 20
BATCH_SIZE = 50


async def _stored_ids(database_url: str, ids: list[str]) -> set[str]:
    database = create_database(database_url)
    try:
        return {event.id for event in await EventStore(database).get_events(ids)}
    finally:
        await database.aclose()


def test_accepted_events_survive_a_sigkill_right_after_the_response(
    migrated_env: dict[str, str], database_url: str
) -> None:
    token = token_made_in_process(migrated_env, "events:publish", "ingest").text
    examples = [event_type.example for event_type in load_event_types().values() if not event_type.operational]
    batch = (examples * (BATCH_SIZE // len(examples) + 1))[:BATCH_SIZE]
    port = free_port()
    accepted: list[str] = []
    with running_server(migrated_env, port) as server:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
            for _ in range(BATCHES):
                response = client.post("/api/v1/events", json=batch)
                assert response.status_code == 202
                accepted += response.json()["data"]
            server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
    assert len(accepted) == BATCHES * BATCH_SIZE
    assert asyncio.run(_stored_ids(database_url, accepted)) == set(accepted)
