"""Subscribing a callback URL on a private, loopback or link-local address is refused, naming the field,
unless the operator's allow-list admits it (the test settings allow 127.0.0.0/8 and ::1)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import TokenFactory, bearer

V2 = "/public-api/notifications/v2.0"
BLOCKED_EVERYWHERE = ["http://10.0.0.1/", "http://169.254.169.254/latest/meta-data", "http://192.168.1.20:8080/x"]
BROKERS = [f"stalled-{number}.example:9092" for number in range(3)]
LOOPBACK = ["http://127.0.0.1/", "http://[::1]/hook", "http://localhost:8000/hook"]


def _body(url: str) -> dict[str, object]:
    return {"via": "webhook", "notifications": ["BootNotification"], "webhook": {"callbackUrl": url}}


@pytest.mark.parametrize("url", BLOCKED_EVERYWHERE + LOOPBACK)
async def test_non_public_callback_is_422_on_webhook_callback_url_without_an_allow_list(
    strict_api: httpx.AsyncClient, token_factory: TokenFactory, url: str
) -> None:
    response = await strict_api.post(V2, json=_body(url), headers=bearer(await token_factory("admin")))
    assert response.status_code == 422
    assert list(response.json()["errors"]) == ["webhook.callbackUrl"]
    assert "blocked address" in response.json()["errors"]["webhook.callbackUrl"][0]


@pytest.mark.parametrize("url", LOOPBACK)
async def test_allow_list_admits_loopback(api: httpx.AsyncClient, token_factory: TokenFactory, url: str) -> None:
    response = await api.post(V2, json=_body(url), headers=bearer(await token_factory("admin")))
    assert response.status_code == 201


@pytest.mark.parametrize("url", BLOCKED_EVERYWHERE)
async def test_allow_list_for_loopback_does_not_admit_other_private_ranges(
    api: httpx.AsyncClient, token_factory: TokenFactory, url: str
) -> None:
    response = await api.post(V2, json=_body(url), headers=bearer(await token_factory("admin")))
    assert response.status_code == 422
    assert "webhook.callbackUrl" in response.json()["errors"]


async def test_update_and_v1_are_guarded_too(api: httpx.AsyncClient, token_factory: TokenFactory) -> None:
    headers = bearer(await token_factory("admin"))
    created = (await api.post(V2, json=_body("http://127.0.0.1/"), headers=headers)).json()["data"]
    update = await api.put(f"{V2}/{created['id']}", json=_body("http://10.0.0.1/"), headers=headers)
    assert update.status_code == 422
    assert "webhook.callbackUrl" in update.json()["errors"]
    v1 = await api.post(
        "/public-api/notifications/v1.0",
        json={"callbackUrl": "http://169.254.169.254/", "notifications": ["BootNotification"]},
        headers=headers,
    )
    assert v1.status_code == 422
    assert "callbackUrl" in v1.json()["errors"]


async def test_unresolvable_host_name_is_accepted_and_checked_again_at_delivery(
    api: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    response = await api.post(V2, json=_body("https://receiver.invalid/hook"), headers=bearer(await token_factory()))
    assert response.status_code == 201


async def test_host_name_idna_cannot_encode_is_422_not_500(api: httpx.AsyncClient, token_factory: TokenFactory) -> None:
    url = "http://" + "a" * 64 + ".example.com/"
    response = await api.post(V2, json=_body(url), headers=bearer(await token_factory()))
    assert response.status_code == 422
    assert "webhook.callbackUrl" in response.json()["errors"]


@pytest.fixture
async def stalled_name_lookups(api: httpx.AsyncClient) -> AsyncIterator[None]:
    """Name lookups that do not answer: the loop's one resolver thread is held, as behind a resolver that stalls.

    Taken after the app is up and given back before it closes, which uses that thread too."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
    release = threading.Event()
    held = loop.run_in_executor(None, release.wait)
    yield
    release.set()
    await held


@pytest.mark.usefixtures("stalled_name_lookups")
@pytest.mark.parametrize(
    "body",
    [
        _body("http://stalled.example/hook"),
        {"via": "kafka", "notifications": ["BootNotification"], "kafka": {"topic": "t", "brokers": BROKERS}},
    ],
    ids=["webhook", "kafka"],
)
async def test_a_subscribe_whose_name_lookups_stall_is_answered_within_the_request_deadline(
    api: httpx.AsyncClient, token_factory: TokenFactory, body: dict[str, object]
) -> None:
    response = await api.post(V2, json=body, headers=bearer(await token_factory("admin")))
    # A name that does not resolve in time is accepted (each delivery checks it again), not answered 503.
    assert response.status_code == 201, response.text
