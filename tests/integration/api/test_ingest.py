"""`POST /api/v1/events`: accepted events are stored before the 202; bad input gets a clear 4xx."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from chargewire.catalog import load_event_types
from chargewire.runtime import Runtime
from chargewire.store.tables import events
from tests.conftest import TokenFactory, bearer

EXAMPLES = {name: event_type.example for name, event_type in load_event_types().items() if not event_type.operational}


async def _stored_count(runtime: Runtime) -> int:
    async with runtime.database.reading() as connection:
        return int((await connection.execute(select(func.count()).select_from(events))).scalar_one())


@pytest.fixture
async def publisher(token_factory: TokenFactory) -> dict[str, str]:
    return bearer(await token_factory("events:publish"))


async def test_single_event_is_stored_and_answered_with_its_id(
    api: httpx.AsyncClient, publisher: dict[str, str], runtime: Runtime
) -> None:
    payload = EXAMPLES["BootNotification"]
    response = await api.post("/api/v1/events", json=payload, headers=publisher)
    assert response.status_code == 202
    [event_id] = response.json()["data"]
    [stored] = await runtime.publisher._store.get_events([event_id])
    assert stored.name == "BootNotification"
    assert orjson.loads(stored.payload) == payload


async def test_batch_of_every_example_is_stored_in_order(
    api: httpx.AsyncClient, publisher: dict[str, str], runtime: Runtime
) -> None:
    payloads = list(EXAMPLES.values())
    response = await api.post("/api/v1/events", json=payloads, headers=publisher)
    assert response.status_code == 202
    ids = response.json()["data"]
    assert len(ids) == len(payloads)
    stored = await runtime.publisher._store.get_events(ids)
    assert [event.name for event in stored] == [payload["notification"] for payload in payloads]


async def test_invalid_item_rejects_the_whole_batch_naming_index_and_field(
    api: httpx.AsyncClient, publisher: dict[str, str], runtime: Runtime
) -> None:
    bad = copy.deepcopy(EXAMPLES["SessionMeterValuesNotification"])
    bad["sessionId"] = "not-a-number"
    response = await api.post("/api/v1/events", json=[EXAMPLES["BootNotification"], bad], headers=publisher)
    assert response.status_code == 422
    body = response.json()
    assert list(body["errors"]) == ["1.sessionId"]
    assert body["message"]
    assert await _stored_count(runtime) == 0


async def test_unknown_event_name_is_rejected_with_suggestions(
    api: httpx.AsyncClient, publisher: dict[str, str]
) -> None:
    response = await api.post("/api/v1/events", json={"notification": "SessionUpdateNotif"}, headers=publisher)
    assert response.status_code == 422
    assert "SessionUpdateNotification" in response.json()["errors"]["0.notification"][0]


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"{not json", 400), (b"", 400), (b'"just a string"', 422), (b"[1, 2]", 422), (b"[]", 422), (b"null", 422)],
)
async def test_unreadable_or_wrongly_shaped_body_gets_a_json_4xx(
    api: httpx.AsyncClient, publisher: dict[str, str], body: bytes, status: int
) -> None:
    headers = {**publisher, "Content-Type": "application/json"}
    response = await api.post("/api/v1/events", content=body, headers=headers)
    assert response.status_code == status
    assert response.json()["message"]


async def test_body_over_the_size_limit_is_refused(
    api: httpx.AsyncClient, publisher: dict[str, str], runtime: Runtime
) -> None:
    limit = runtime.settings.ingest_max_body_bytes
    payload = {**EXAMPLES["chargePoint.dataTransferReceived"], "padding": "x" * (limit + 1)}
    response = await api.post("/api/v1/events", json=payload, headers=publisher)
    assert response.status_code == 413
    assert str(limit) in response.json()["message"]


async def test_batch_over_the_maximum_is_refused(
    api: httpx.AsyncClient, publisher: dict[str, str], runtime: Runtime
) -> None:
    too_many = [EXAMPLES["BootNotification"]] * (runtime.settings.ingest_max_batch + 1)
    response = await api.post("/api/v1/events", json=too_many, headers=publisher)
    assert response.status_code == 422
    assert "at most" in response.json()["message"]
    assert await _stored_count(runtime) == 0


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer cw_wrong"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}],
)
async def test_missing_or_wrong_token_is_unauthenticated(api: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await api.post("/api/v1/events", json=EXAMPLES["BootNotification"], headers=headers)
    assert response.status_code == 401
    assert response.json() == {"message": "Unauthenticated."}


async def test_token_without_publish_scope_is_forbidden(api: httpx.AsyncClient, token_factory: TokenFactory) -> None:
    headers = bearer(await token_factory("notifications:manage"))
    response = await api.post("/api/v1/events", json=EXAMPLES["BootNotification"], headers=headers)
    assert response.status_code == 403
    assert response.json() == {
        "message": "This action is unauthorized. It needs a token with the events:publish scope."
    }


async def test_revoked_token_is_refused(api: httpx.AsyncClient, runtime: Runtime) -> None:
    created = await runtime.tokens.create("soon revoked", ["events:publish"])
    await runtime.tokens.revoke(created.token.id)
    response = await api.post("/api/v1/events", json=EXAMPLES["BootNotification"], headers=bearer(created.text))
    assert response.status_code == 401


async def test_admin_token_may_publish(api: httpx.AsyncClient, token_factory: TokenFactory) -> None:
    response = await api.post(
        "/api/v1/events", json=EXAMPLES["BootNotification"], headers=bearer(await token_factory("admin"))
    )
    assert response.status_code == 202


async def test_event_types_list_every_event_with_schema_and_example(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/event-types")
    assert response.status_code == 200
    data: list[dict[str, Any]] = response.json()["data"]
    assert [item["name"] for item in data] == list(load_event_types())
    boot = data[0]
    assert set(boot) >= {"name", "deprecated", "successors", "schema", "example", "description", "group"}
    assert boot["schema"]["properties"]["notification"]["enum"] == ["BootNotification"]


async def test_the_documented_publish_example_is_accepted(api: httpx.AsyncClient, publisher: dict[str, str]) -> None:
    document = (await api.get("/openapi.json")).json()
    example = document["paths"]["/api/v1/events"]["post"]["requestBody"]["content"]["application/json"]["example"]
    response = await api.post("/api/v1/events", json=example, headers=publisher)
    assert response.status_code == 202, response.text


async def test_openapi_documentation_is_served(api: httpx.AsyncClient) -> None:
    assert (await api.get("/docs")).status_code == 200
    paths = (await api.get("/openapi.json")).json()["paths"]
    assert "/api/v1/events" in paths


async def test_the_publish_path_answers_other_methods_405_allowing_post(
    api: httpx.AsyncClient, publisher: dict[str, str]
) -> None:
    response = await api.get("/api/v1/events", headers=publisher)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.json() == {"message": "Method Not Allowed"}


async def test_notifications_api_names_the_body_for_a_json_syntax_error(
    api: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    headers = {**bearer(await token_factory("admin")), "Content-Type": "application/json"}
    response = await api.post("/public-api/notifications/v2.0", content=b'{"via": "webhook",', headers=headers)
    assert response.status_code == 422
    assert list(response.json()["errors"]) == ["(body)"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("event=%00", "event"),
        ("subscription=x%00", "subscription"),
        ("notification=NoSuchEvent", "notification"),
        ("since=0001-01-01T00:00:00%2B01:00", "since"),  # before the first moment UTC can hold
        ("until=9999-12-31T23:59:59-01:00", "until"),
    ],
)
async def test_delivery_log_refuses_filters_that_cannot_match(
    api: httpx.AsyncClient, token_factory: TokenFactory, query: str, field: str
) -> None:
    response = await api.get(f"/api/v1/deliveries?{query}", headers=bearer(await token_factory("admin")))
    assert response.status_code == 422
    assert field in response.json()["errors"]


async def test_delivery_log_takes_a_time_without_offset_as_utc(
    api: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    response = await api.get(
        "/api/v1/deliveries?since=2026-01-01T00:00:00", headers=bearer(await token_factory("admin"))
    )
    assert response.status_code == 200


async def test_operational_events_cannot_be_published_from_outside(
    api: httpx.AsyncClient, publisher: dict[str, str]
) -> None:
    example = load_event_types()["subscription.disabled"].example
    response = await api.post("/api/v1/events", json=example, headers=publisher)
    assert response.status_code == 422
    assert "sent by chargewire itself" in response.json()["errors"]["0.notification"][0]
