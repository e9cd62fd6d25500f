"""The served OpenAPI document's links: each names a real operation and a parameter that operation takes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import TokenFactory, bearer


async def _document(api: httpx.AsyncClient) -> dict[str, Any]:
    response = await api.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        operation["operationId"]: operation for methods in document["paths"].values() for operation in methods.values()
    }


async def test_every_link_in_the_openapi_document_names_an_operation_and_a_parameter_it_takes(
    api: httpx.AsyncClient,
) -> None:
    document = await _document(api)
    operations = _operations(document)
    links = [
        link
        for methods in document["paths"].values()
        for operation in methods.values()
        for response in operation["responses"].values()
        for link in response.get("links", {}).values()
    ]
    assert len(links) > 50
    for link in links:
        target = operations[link["operationId"]]
        taken = {f"{parameter['in']}.{parameter['name']}" for parameter in target.get("parameters", [])}
        for name in link["parameters"]:
            assert (name if "." in name else f"path.{name}") in taken, link


@pytest.mark.parametrize(
    ("path", "expression"),
    [
        ("/public-api/notifications/v2.0", "$response.body#/data/id"),
        ("/public-api/notifications/v1.0", "$response.body#/webhookId"),
    ],
)
async def test_a_created_subscription_links_its_id_to_reading_rotating_and_deleting_it(
    api: httpx.AsyncClient, path: str, expression: str
) -> None:
    links = (await _document(api))["paths"][path]["post"]["responses"]["201"]["links"]
    assert links["ReadSubscription"]["parameters"] == {"notification": expression}
    assert links["RotateSecret"]["parameters"] == {"subscription_id": expression}
    assert links["Unsubscribe"]["parameters"] == {"notification": expression}
    assert links["ListDeliveriesOfSubscription"]["parameters"] == {"query.subscription": expression}


async def test_following_the_links_of_a_test_send_reaches_its_delivery(
    api: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    headers = bearer(await token_factory("admin"))
    document = await _document(api)
    body = {"via": "webhook", "notifications": ["BootNotification"], "webhook": {"callbackUrl": "http://127.0.0.1/"}}
    created = (await api.post("/public-api/notifications/v2.0", json=body, headers=headers)).json()["data"]
    sent = await api.post(f"/api/v1/subscriptions/{created['id']}/test", headers=headers)
    links = document["paths"]["/api/v1/subscriptions/{subscription_id}/test"]["post"]["responses"]["202"]["links"]
    pointer = links["ReadDelivery"]["parameters"]["delivery_id"].removeprefix("$response.body#/")
    delivery_id = sent.json()
    for key in pointer.split("/"):
        delivery_id = delivery_id[key]
    read = await api.get(f"/api/v1/deliveries/{delivery_id}", headers=headers)
    assert read.status_code == 200
    assert read.json()["data"]["subscriptionId"] == created["id"]
