"""`Idempotency-Key` on `POST /api/v1/events`: a publish sent again, after a 503 or at the same moment, is stored
once and answered with the first publish's event ids; a reused key with another body, or an invalid key, gets a
4xx naming the header."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from chargewire.catalog import load_event_types
from chargewire.config import Settings
from chargewire.dispatch.idempotency_sweep import IdempotencySweep
from chargewire.runtime import Runtime
from chargewire.services.idempotency import HEADER
from chargewire.store.tables import deliveries, event_sequence, events, idempotency_keys
from tests.conftest import TokenFactory, bearer
from tests.integration.api.conftest import api_with
from tests.support.ocpp import eventually

HARDWARE = load_event_types()["HardwareStatusNotification"].example
BOOT = load_event_types()["BootNotification"].example


async def _count(runtime: Runtime, table: Any) -> int:
    async with runtime.database.reading() as connection:
        return int((await connection.execute(select(func.count()).select_from(table))).scalar_one())


@pytest.fixture
async def publisher(runtime: Runtime, token_factory: TokenFactory) -> dict[str, str]:
    """A publishing token, with a webhook subscription to both example events, so each event makes a delivery."""
    owner = await runtime.tokens.create("owner", ["notifications:manage"])
    body = {
        "via": "webhook",
        "notifications": ["HardwareStatusNotification", "BootNotification"],
        "webhook": {"callbackUrl": "http://127.0.0.1:9/hook"},
    }
    await runtime.subscriptions.create(owner.token, body)
    return bearer(await token_factory("events:publish"))


def _keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, HEADER: key}


@contextlib.asynccontextmanager
async def _event_numbering_held(runtime: Runtime) -> AsyncIterator[None]:
    """Hold, from another connection, the write a publish's transaction needs (SQLite's write lock, PostgreSQL's
    lock of the numbering row) for the block; publishes wait and commit after it."""
    async with runtime.database.transaction() as connection:
        await connection.execute(update(event_sequence).values(last_seq=event_sequence.c.last_seq))
        yield


async def test_a_repeat_with_the_same_key_and_body_answers_the_same_ids_and_publishes_once(
    api: httpx.AsyncClient, publisher: dict[str, str], runtime: Runtime
) -> None:
    key = str(uuid.uuid4())
    batch = [HARDWARE, BOOT]
    first = await api.post("/api/v1/events", json=batch, headers=_keyed(publisher, key))
    again = await api.post("/api/v1/events", json=batch, headers=_keyed(publisher, key))

    assert first.status_code == again.status_code == 202
    assert len(first.json()["data"]) == 2
    assert again.json() == first.json()
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await _count(runtime, events) == 2
    assert await _count(runtime, deliveries) == 2


async def test_publishes_without_a_key_or_with_different_keys_are_each_stored(
    api: httpx.AsyncClient, publisher: dict[str, str], runtime: Runtime
) -> None:
    for headers in (publisher, publisher, _keyed(publisher, "key-1"), _keyed(publisher, "key-2")):
        assert (await api.post("/api/v1/events", json=HARDWARE, headers=headers)).status_code == 202

    assert await _count(runtime, deliveries) == 4


async def test_the_same_key_from_another_token_is_another_publish(
    api: httpx.AsyncClient, publisher: dict[str, str], runtime: Runtime, token_factory: TokenFactory
) -> None:
    other = bearer(await token_factory("events:publish"))
    first = await api.post("/api/v1/events", json=HARDWARE, headers=_keyed(publisher, "shared-key"))
    second = await api.post("/api/v1/events", json=HARDWARE, headers=_keyed(other, "shared-key"))

    assert first.status_code == second.status_code == 202
    assert first.json() != second.json()
    assert await _count(runtime, deliveries) == 2


async def test_the_same_key_with_a_different_body_is_refused_naming_the_header_and_publishes_nothing(
    api: httpx.AsyncClient, publisher: dict[str, str], runtime: Runtime
) -> None:
    key = str(uuid.uuid4())
    await api.post("/api/v1/events", json=HARDWARE, headers=_keyed(publisher, key))
    changed = await api.post("/api/v1/events", json={**HARDWARE, "evseId": 2}, headers=_keyed(publisher, key))

    assert changed.status_code == 422
    assert "different body" in changed.json()["errors"][HEADER][0]
    assert await _count(runtime, deliveries) == 1


@pytest.mark.parametrize(
    "key",
    [b"", b"k" * 256, b"has space", b"caf\xc3\xa9", b"tab\tinside"],
    ids=["empty", "too-long", "space", "non-ascii", "control"],
)
async def test_an_invalid_key_is_refused_naming_the_header_and_publishes_nothing(
    api: httpx.AsyncClient, publisher: dict[str, str], runtime: Runtime, key: bytes
) -> None:
    headers = [(name.encode(), value.encode()) for name, value in publisher.items()] + [(HEADER.encode(), key)]
    response = await api.post("/api/v1/events", json=HARDWARE, headers=headers)

    assert response.status_code == 422
    assert list(response.json()["errors"]) == [HEADER]
    assert await _count(runtime, events) == 0


async def test_the_longest_key_is_accepted(api: httpx.AsyncClient, publisher: dict[str, str], runtime: Runtime) -> None:
    key = "k" * 255
    first = await api.post("/api/v1/events", json=HARDWARE, headers=_keyed(publisher, key))
    again = await api.post("/api/v1/events", json=HARDWARE, headers=_keyed(publisher, key))

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()


async def test_concurrent_duplicates_in_one_process_publish_once(
    api: httpx.AsyncClient, publisher: dict[str, str], runtime: Runtime
) -> None:
    headers = _keyed(publisher, str(uuid.uuid4()))
    async with _event_numbering_held(runtime):
        sending = [asyncio.create_task(api.post("/api/v1/events", json=HARDWARE, headers=headers)) for _ in range(5)]
        await asyncio.sleep(0.5)  # every request is under way, waiting for the numbering
    answers = await asyncio.gather(*sending)

    assert [answer.status_code for answer in answers] == [202] * 5
    assert len({tuple(answer.json()["data"]) for answer in answers}) == 1
    assert await _count(runtime, deliveries) == 1


async def test_concurrent_duplicates_in_two_processes_publish_once(
    api: httpx.AsyncClient, publisher: dict[str, str], runtime: Runtime, settings: Settings
) -> None:
    headers = _keyed(publisher, str(uuid.uuid4()))
    async with api_with(settings) as other_process:
        # Both look the key up, find nothing and try to store it; the table's primary key lets one of them.
        # Held for less than SQLite's busy timeout, which the other runtime's BEGIN waits at most.
        async with _event_numbering_held(runtime):
            sending = [
                asyncio.create_task(client.post("/api/v1/events", json=HARDWARE, headers=headers))
                for client in (api, other_process)
            ]
            await asyncio.sleep(1.0)
        answers = await asyncio.gather(*sending)

    assert [answer.status_code for answer in answers] == [202, 202]
    assert answers[0].json() == answers[1].json()
    assert await _count(runtime, deliveries) == 1


async def test_a_retry_after_a_503_whose_publish_committed_late_publishes_once(
    api: httpx.AsyncClient, publisher: dict[str, str], runtime: Runtime
) -> None:
    headers = _keyed(publisher, str(uuid.uuid4()))
    async with _event_numbering_held(runtime):
        # Held past the API's request deadline: answered 503, while its transaction waits on.
        timed_out = await api.post("/api/v1/events", json=HARDWARE, headers=headers)
    retried = await api.post("/api/v1/events", json=HARDWARE, headers=headers)

    assert timed_out.status_code == 503
    assert timed_out.headers["Retry-After"]
    assert retried.status_code == 202
    assert retried.headers["Idempotent-Replayed"] == "true", "the first publish did not commit after its 503"
    assert await _count(runtime, events) == 1
    assert await _count(runtime, deliveries) == 1
    [event] = await runtime.publisher._store.get_events(retried.json()["data"])
    assert event.name == "HardwareStatusNotification"


async def test_a_key_past_its_retention_is_swept_and_can_publish_again(
    api: httpx.AsyncClient, publisher: dict[str, str], runtime: Runtime
) -> None:
    headers = _keyed(publisher, str(uuid.uuid4()))
    first = await api.post("/api/v1/events", json=HARDWARE, headers=headers)

    kept = await IdempotencySweep(runtime.idempotency_store, retention_s=3600).sweep()
    swept = await IdempotencySweep(runtime.idempotency_store, retention_s=1e-6).sweep()
    again = await api.post("/api/v1/events", json=HARDWARE, headers=headers)

    assert (kept, swept) == (0, 1)
    assert again.status_code == 202
    assert again.json() != first.json()
    assert await _count(runtime, deliveries) == 2


async def test_a_running_worker_sweeps_keys_past_their_retention(
    api: httpx.AsyncClient, publisher: dict[str, str], runtime: Runtime, settings: Settings
) -> None:
    await api.post("/api/v1/events", json=HARDWARE, headers=_keyed(publisher, str(uuid.uuid4())))
    stored = await _count(runtime, idempotency_keys)
    async with await Runtime.open(settings.model_copy(update={"idempotency_retention_s": 1e-6})) as worker:
        stop = asyncio.Event()
        delivering = asyncio.create_task(worker.deliver(worker.dispatcher(), stop))
        try:
            # The sweep runs as the worker starts.
            swept = await eventually(lambda: _emptied(runtime), timeout_s=30)
        finally:
            stop.set()
            await delivering

    assert (stored, swept) == (1, True)


async def _emptied(runtime: Runtime) -> bool:
    return await _count(runtime, idempotency_keys) == 0
