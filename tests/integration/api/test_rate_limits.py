"""Per-token budgets on every authenticated route, and a far smaller one for actions that send requests out."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from chargewire.config import Settings
from chargewire.runtime import Runtime
from tests.conftest import TokenFactory, bearer
from tests.integration.api.conftest import api_with

API_BUDGET = 20
OUTGOING_BUDGET = 3


@pytest.fixture
async def limited_api(settings: Settings, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The API with small budgets: 20 requests a minute, 3 of them outgoing actions."""
    async with api_with(
        settings, api_rate_limit_per_minute=API_BUDGET, outgoing_rate_limit_per_minute=OUTGOING_BUDGET
    ) as client:
        yield client


async def test_delivery_log_is_429_with_retry_after_once_a_tokens_budget_is_spent(
    limited_api: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    headers = bearer(await token_factory("notifications:manage"))
    statuses = [(await limited_api.get("/api/v1/deliveries", headers=headers)).status_code for _ in range(API_BUDGET)]
    assert statuses == [200] * API_BUDGET
    over = await limited_api.get("/api/v1/deliveries", headers=headers)
    assert over.status_code == 429
    assert 1 <= int(over.headers["Retry-After"]) <= 60
    assert over.json() == {"message": "Too Many Attempts."}


async def test_another_tokens_budget_is_its_own(limited_api: httpx.AsyncClient, token_factory: TokenFactory) -> None:
    greedy = bearer(await token_factory("notifications:manage"))
    for _ in range(API_BUDGET + 1):
        await limited_api.get("/api/v1/deliveries", headers=greedy)
    other = await limited_api.get("/api/v1/deliveries", headers=bearer(await token_factory("notifications:manage")))
    assert other.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/subscriptions/{id}/test",
        "/api/v1/subscriptions/{id}/rotate-secret",
        "/public-api/actions/notifications/v1.0/{id}/resend",
    ],
)
async def test_actions_that_send_requests_out_have_a_stricter_budget(
    limited_api: httpx.AsyncClient, token_factory: TokenFactory, path: str
) -> None:
    headers = bearer(await token_factory("notifications:manage"))
    body = {"via": "webhook", "notifications": ["BootNotification"], "webhook": {"callbackUrl": "http://127.0.0.1:9/"}}
    created = await limited_api.post("/public-api/notifications/v2.0", json=body, headers=headers)
    url = path.format(id=created.json()["data"]["id"])
    answers = [await limited_api.post(url, json={"notifications": ["BootNotification"]}, headers=headers)]
    answers += [await limited_api.post(url, json={"notifications": ["BootNotification"]}, headers=headers)]
    answers += [await limited_api.post(url, json={"notifications": ["BootNotification"]}, headers=headers)]
    assert all(answer.status_code != 429 for answer in answers)
    over = await limited_api.post(url, json={"notifications": ["BootNotification"]}, headers=headers)
    assert over.status_code == 429
    assert "Retry-After" in over.headers
    assert (await limited_api.get("/api/v1/deliveries", headers=headers)).status_code == 200
