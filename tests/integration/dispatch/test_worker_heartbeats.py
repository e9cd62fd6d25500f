"""Each worker stores a heartbeat with its loops' states; /metrics and the back office overview show workers as
alive, stale or stopped, with the age of the oldest due delivery."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from chargewire.backoffice.session import COOKIE_NAME, Session, SessionSigner
from chargewire.clock import utcnow
from chargewire.runtime import Runtime
from chargewire.security.key_file import resolve_secret_key
from chargewire.services.backoffice_sessions import BackofficeSessions
from chargewire.services.health import STALE_AFTER_S
from chargewire.store.worker_store import WorkerHeartbeat
from tests.conftest import TokenFactory, bearer


@pytest.fixture
async def operator_cookies(runtime: Runtime) -> dict[str, str]:
    """A signed-in back-office session, as the browser's cookie header."""
    user = await runtime.users.create("operator@example.com", "a long enough password")
    signer = SessionSigner(resolve_secret_key(runtime.settings).value)
    session_id = await BackofficeSessions.on(runtime.database, signer.max_age_s).start(user.id, "127.0.0.1", "pytest")
    session = Session()
    session.sign_in(user.id, session_id)
    return {"Cookie": f"{COOKIE_NAME}={signer.dumps(session)}"}


@pytest.fixture
async def delivering(runtime: Runtime) -> AsyncIterator[asyncio.Event]:
    """This runtime's worker running in the background; set the event to stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.deliver(runtime.dispatcher(), stop))
    yield stop
    stop.set()
    await asyncio.wait_for(task, 30)


async def _worker(runtime: Runtime) -> WorkerHeartbeat:
    for _ in range(200):
        workers = await runtime.worker_store.recent_workers(utcnow() - timedelta(minutes=1))
        if workers and "claim" in workers[0].tasks:
            return workers[0]
        await asyncio.sleep(0.05)
    raise AssertionError("no heartbeat was stored")


async def test_a_running_worker_stores_its_heartbeat_and_shows_as_alive_in_metrics_and_the_overview(
    runtime: Runtime,
    api: httpx.AsyncClient,
    delivering: asyncio.Event,
    operator_cookies: dict[str, str],
    token_factory: TokenFactory,
) -> None:
    heartbeat = await _worker(runtime)
    assert heartbeat.stopped_at is None
    assert set(heartbeat.tasks.values()) == {"running"}

    metrics = (await api.get("/metrics", headers=bearer(await token_factory("metrics:read")))).text
    assert 'chargewire_workers{state="alive"} 1.0' in metrics
    assert 'chargewire_task_state{state="running",task="claim"} 1.0' in metrics
    assert "chargewire_oldest_due_delivery_age_seconds 0.0" in metrics
    assert "chargewire_database_up 1.0" in metrics

    overview = await api.get("/backoffice/api/overview", headers=operator_cookies)
    assert overview.status_code == 200
    [shown] = overview.json()["workers"]
    assert (shown["id"], shown["state"]) == (heartbeat.worker_id, "alive")
    page = await api.get("/backoffice/overview", headers=operator_cookies)
    assert heartbeat.worker_id in page.text


async def test_a_stopped_worker_says_so_and_a_silent_one_shows_as_stale(
    runtime: Runtime, api: httpx.AsyncClient, delivering: asyncio.Event, token_factory: TokenFactory
) -> None:
    running = await _worker(runtime)
    silent_at = utcnow() - timedelta(seconds=STALE_AFTER_S + 5)
    await runtime.worker_store.beat(
        WorkerHeartbeat("wrk_silent", "elsewhere", 1, silent_at, silent_at, {"claim": "retrying"}, "claim: locked")
    )
    delivering.set()
    for _ in range(200):
        states = {view.heartbeat.worker_id: view.state for view in (await runtime.health_checks.workers()).workers}
        if states.get(running.worker_id) == "stopped":
            break
        await asyncio.sleep(0.05)
    assert states == {running.worker_id: "stopped", "wrk_silent": "stale"}
    metrics = (await api.get("/metrics", headers=bearer(await token_factory("metrics:read")))).text
    assert 'chargewire_workers{state="stale"} 1.0' in metrics
    assert 'chargewire_workers{state="stopped"} 1.0' in metrics
