"""A PostgreSQL restart met by API requests and by the kept connections (publish, announced claim, record) in use:
503s while it lasts (never 500), the worker's loops see an outage (not a bug), and delivery resumes after it with
every accepted event delivered.

The restart is PostgreSQL's own (fast mode: each idle client gets a FATAL goodbye, then the end of its connection).
The database is reached through a proxy that holds back those ends during the restart, so that statements sent
between the goodbye and the end, a window a busy process meets by chance, are sent every time.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from chargewire.catalog import load_event_types
from chargewire.config import Settings
from chargewire.devtools.postgres import PostgresCluster, throwaway_cluster
from chargewire.dispatch.supervisor import TaskState
from chargewire.runtime import Runtime
from chargewire.web import create_app
from tests.conftest import bearer
from tests.support.held_goodbye_proxy import HeldGoodbyeProxy
from tests.support.receiver import Receiver, always

HARDWARE = load_event_types()["HardwareStatusNotification"].example
IN_FLIGHT = 20
_RETRIES = 4


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster of this module's own: its test restarts it."""
    with throwaway_cluster() as running:
        running.create_database("restarted")
        yield running


@pytest.fixture
async def proxy(cluster: PostgresCluster) -> AsyncIterator[HeldGoodbyeProxy]:
    running = HeldGoodbyeProxy(cluster.port)
    await running.start()
    yield running
    await running.aclose()


@pytest.fixture
def database_url(cluster: PostgresCluster, proxy: HeldGoodbyeProxy) -> str:
    """The module cluster's database, through the proxy (migrated by the `runtime` fixture)."""
    return cluster.url("restarted").replace(f":{cluster.port}/", f":{proxy.port}/")


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The app in process, its unhandled errors answered 500 as a server would, not raised into the test."""
    transport = httpx.ASGITransport(app=create_app(runtime), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://chargewire.test") as client:
        yield client


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Retries a fraction of a second apart, so that delivery resumes soon after the restart."""
    return settings.model_copy(
        update={"retry_schedule_s": [0.0, 0.3, 0.3, 0.3], "retry_jitter": 0.0, "worker_poll_interval_s": 0.05}
    )


def _events(first: int, count: int) -> list[dict[str, object]]:
    return [{**HARDWARE, "chargePointId": first + n} for n in range(count)]


async def _publish_when_back(api: httpx.AsyncClient, token: str, events: list[dict[str, object]]) -> None:
    """Publish, retrying while the API still answers 503 right after the restart."""
    for _ in range(600):
        response = await api.post("/api/v1/events", json=events, headers=bearer(token))
        if response.status_code != 503:
            assert response.status_code == 202, response.text
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the API still answers 503 a minute after the restart")


def _faults(runtime: Runtime) -> int:
    assert runtime.supervisor is not None
    return sum(runtime.supervisor.faults.values())


def _retried_enough(runtime: Runtime) -> bool:
    """Whether each loop that met the outage has backed off and tried again at least three times."""
    assert runtime.supervisor is not None
    retrying = [status for status in runtime.supervisor.statuses() if status.state is TaskState.RETRYING]
    return len(retrying) >= 2 and all(status.episode_faults >= _RETRIES for status in retrying)


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(600):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition was not met within 30 s")


def _points(receiver: Receiver) -> set[int]:
    return {json.loads(request.body)["chargePointId"] for request in receiver.on_path("/restart")}


async def _wait_for_points(receiver: Receiver, expected: set[int]) -> None:
    while not expected <= _points(receiver):
        await receiver.wait_for(len(receiver.on_path("/restart")) + 1, "/restart", timeout_s=60)


async def test_a_postgresql_restart_answers_503_never_500_and_delivery_resumes_with_nothing_lost(
    runtime: Runtime,
    api: httpx.AsyncClient,
    receiver: Receiver,
    cluster: PostgresCluster,
    proxy: HeldGoodbyeProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    owner = await runtime.tokens.create("restart", ["notifications:manage", "events:publish"])
    url = receiver.on("/restart", always(202, delay_s=0.2))
    await runtime.subscriptions.create(
        owner.token,
        {"via": "webhook", "notifications": ["HardwareStatusNotification"], "webhook": {"callbackUrl": url}},
    )
    stop = asyncio.Event()
    worker = asyncio.create_task(runtime.deliver(runtime.dispatcher(), stop))
    try:
        await _publish_when_back(api, owner.text, _events(0, IN_FLIGHT))
        await receiver.wait_for(1, "/restart")  # deliveries in flight: their records meet the restart

        proxy.hold()
        await asyncio.to_thread(cluster.stop, "fast")
        try:
            during = [
                (await api.post("/api/v1/events", json=_events(1000 + n, 1), headers=bearer(owner.text))).status_code
                for n in range(5)
            ]
            during.append((await api.get("/public-api/notifications/v2.0", headers=bearer(owner.text))).status_code)
            during.append((await api.get("/readyz")).status_code)
            held = proxy.held
            # Down for a few seconds: long enough for the worker's loops to back off several times.
            attempts_before, faults_before = proxy.connections, _faults(runtime)
            await _until(lambda: _retried_enough(runtime))
            attempts, faults = proxy.connections - attempts_before, _faults(runtime) - faults_before
        finally:
            proxy.release()
            await asyncio.to_thread(cluster.start)

        await _publish_when_back(api, owner.text, _events(100, 30))
        await _wait_for_points(receiver, set(range(IN_FLIGHT)) | set(range(100, 130)))
        await _until(lambda: set((runtime.loop_states() or {}).values()) == {"running"})
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)

    assert during == [503] * len(during)
    assert held > 0, "no connection was closed by the restart while its end was held"
    # No busy loop: while the server is down, each attempt to connect is one fault a loop counted, then backed
    # off from (a loop may be connecting when the count is read).
    assert faults > 0
    assert attempts <= faults + len(runtime.loop_states() or {})
    messages = [record.getMessage() for record in caplog.records]
    assert not [message for message in messages if "unexpected error" in message], "a loop took the restart for a bug"
    assert not [record for record in caplog.records if record.levelno >= logging.CRITICAL]
    # Each loop logs the outage once, and its recovery once.
    stopped = [message.split(" stopped by ")[0] for message in messages if "retrying with backoff" in message]
    recovered = [message.split(" recovered after ")[0] for message in messages if " recovered after " in message]
    assert sorted(stopped) == sorted(set(stopped)) == sorted(recovered)
