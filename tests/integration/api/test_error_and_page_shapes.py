"""One shape for errors and pages across the API: dotted field paths, the contract's `meta`, named scopes."""

from __future__ import annotations

import copy

import httpx

from chargewire.catalog import load_event_types
from tests.conftest import TokenFactory, bearer

SESSION = load_event_types()["SessionMeterValuesNotification"].example
CONTRACT_META = {"path", "per_page", "next_cursor", "prev_cursor"}


async def test_ingest_and_subscribe_name_array_items_with_the_same_dotted_paths(
    api: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    admin = bearer(await token_factory("admin"))
    bad = copy.deepcopy(SESSION)
    bad["meterValues"][0]["timestamp"] = 5
    ingest = await api.post("/api/v1/events", json=[SESSION, bad], headers=admin)
    body = {"via": "webhook", "notifications": ["Nope"], "webhook": {"callbackUrl": "https://example.com/x"}}
    subscribe = await api.post("/public-api/notifications/v2.0", json=body, headers=admin)
    assert list(ingest.json()["errors"]) == ["1.meterValues.0.timestamp"]
    assert list(subscribe.json()["errors"]) == ["notifications.0"]


async def test_delivery_log_pages_carry_the_contracts_links_and_meta(
    api: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    admin = bearer(await token_factory("admin"))
    subscriptions = (await api.get("/public-api/notifications/v2.0", headers=admin)).json()
    deliveries = (await api.get("/api/v1/deliveries", params={"per_page": 5}, headers=admin)).json()
    assert set(deliveries["meta"]) == set(subscriptions["meta"]) == CONTRACT_META
    assert set(deliveries["links"]) == set(subscriptions["links"])
    assert deliveries["meta"]["per_page"] == 5


async def test_an_ocpp_like_unknown_name_suggests_the_event_derived_from_that_message(
    api: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    response = await api.post(
        "/api/v1/events", json={"notification": "ChargePointBooted"}, headers=bearer(await token_factory("admin"))
    )
    assert response.status_code == 422
    assert "Did you mean: BootNotification" in response.json()["errors"]["0.notification"][0]


async def test_a_token_without_the_scope_is_told_which_scope_it_needs(
    api: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    response = await api.get("/api/v1/deliveries", headers=bearer(await token_factory("events:publish")))
    assert response.status_code == 403
    assert "notifications:manage" in response.json()["message"]
