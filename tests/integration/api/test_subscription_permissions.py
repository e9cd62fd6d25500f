"""Who sees what: a `notifications:manage` token only its own subscriptions, an `admin` token all of them."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from chargewire.runtime import Runtime
from chargewire.services.subscriptions import OPERATOR
from tests.conftest import TokenFactory, bearer

V2 = "/public-api/notifications/v2.0"
V1 = "/public-api/notifications/v1.0"
BODY: dict[str, Any] = {
    "via": "webhook",
    "notifications": ["BootNotification"],
    "webhook": {"callbackUrl": "http://127.0.0.1:9/hook"},
}


@pytest.fixture
async def tokens(token_factory: TokenFactory) -> dict[str, dict[str, str]]:
    return {
        "alice": bearer(await token_factory("notifications:manage", name="alice")),
        "bob": bearer(await token_factory("notifications:manage", name="bob")),
        "admin": bearer(await token_factory("admin", name="admin")),
    }


async def _create(api: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await api.post(V2, json=BODY, headers=headers)
    assert response.status_code == 201
    return str(response.json()["data"]["id"])


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", V2 + "/{id}", None),
        ("PUT", V2 + "/{id}", BODY),
        ("DELETE", V2 + "/{id}", None),
        ("GET", V1 + "/{id}", None),
        ("PUT", V1 + "/{id}", {"callbackUrl": "http://127.0.0.1:9/x", "notifications": ["BootNotification"]}),
        ("DELETE", V1 + "/{id}", None),
        ("POST", "/public-api/actions/notifications/v1.0/{id}/resend", {"notifications": ["BootNotification"]}),
        ("POST", "/api/v1/subscriptions/{id}/rotate-secret", None),
    ],
)
async def test_manage_token_is_403_on_another_tokens_subscription(
    api: httpx.AsyncClient, tokens: dict[str, dict[str, str]], method: str, path: str, body: Any
) -> None:
    subscription_id = await _create(api, tokens["alice"])
    response = await api.request(method, path.format(id=subscription_id), json=body, headers=tokens["bob"])
    assert response.status_code == 403
    assert response.json() == {"message": "This action is unauthorized."}
    still_there = await api.get(f"{V2}/{subscription_id}", headers=tokens["alice"])
    assert still_there.json()["data"]["webhook"] == BODY["webhook"]


async def test_manage_token_lists_only_its_own_subscriptions(
    api: httpx.AsyncClient, tokens: dict[str, dict[str, str]]
) -> None:
    alices = {await _create(api, tokens["alice"]) for _ in range(3)}
    bobs = {await _create(api, tokens["bob"]) for _ in range(2)}
    listed_v2 = (await api.get(V2, headers=tokens["alice"])).json()["data"]
    assert {item["id"] for item in listed_v2} == alices
    listed_v1 = (await api.get(V1, headers=tokens["bob"])).json()
    assert {item["webhookId"] for item in listed_v1["data"]} == bobs
    assert listed_v1["meta"]["total"] == 2


async def test_admin_sees_and_changes_every_subscription(
    api: httpx.AsyncClient, tokens: dict[str, dict[str, str]]
) -> None:
    alices, bobs = await _create(api, tokens["alice"]), await _create(api, tokens["bob"])
    listed = (await api.get(V2, headers=tokens["admin"])).json()["data"]
    assert {item["id"] for item in listed} == {alices, bobs}
    assert (await api.get(f"{V2}/{alices}", headers=tokens["admin"])).status_code == 200
    assert (await api.put(f"{V2}/{bobs}", json=BODY, headers=tokens["admin"])).status_code == 200
    assert (await api.delete(f"{V2}/{alices}", headers=tokens["admin"])).status_code == 204


async def test_subscription_records_the_token_that_created_it(
    api: httpx.AsyncClient, tokens: dict[str, dict[str, str]], runtime: Runtime
) -> None:
    subscription_id = await _create(api, tokens["alice"])
    # An admin's later update does not take the subscription over: its X-Signature key stays Alice's.
    await api.put(f"{V2}/{subscription_id}", json=BODY, headers=tokens["admin"])
    alice = await runtime.tokens.authenticate(tokens["alice"]["Authorization"].removeprefix("Bearer "))
    stored = await runtime.subscriptions.get(OPERATOR, subscription_id)
    assert stored.token_id == alice.id
