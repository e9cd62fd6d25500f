"""Limits every request body meets: size before parsing, the token before the body, JSON depth and integer range."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from chargewire.catalog import load_event_types
from chargewire.config import Settings
from chargewire.runtime import Runtime
from chargewire.web import create_app
from tests.conftest import TokenFactory, bearer
from tests.integration.api.conftest import api_with

V2 = "/public-api/notifications/v2.0"
SMALL_LIMIT = 4096


def _subscription(**extra: Any) -> dict[str, Any]:
    return {
        "via": "webhook",
        "notifications": ["BootNotification"],
        "webhook": {"callbackUrl": "http://127.0.0.1:9/hook"},
        **extra,
    }


def _nested(depth: int) -> str:
    """JSON text of objects nested `depth` levels (json.dumps itself cannot write the deepest)."""
    return '{"a":' * depth + "1" + "}" * depth


@pytest.fixture
async def small_api(settings: Settings, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """The API with a body limit of 4 KiB on every route but ingest."""
    async with api_with(settings, api_max_body_bytes=SMALL_LIMIT) as client:
        yield client


async def test_body_over_the_limit_is_413_from_its_declared_length_on_a_subscription_route(
    small_api: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    body = _subscription(description="x" * 900, filter={"chargePointId": {"$in": list(range(2000))}})
    response = await small_api.post(V2, json=body, headers=bearer(await token_factory("notifications:manage")))
    assert response.status_code == 413
    assert response.json() == {"message": f"The request body is larger than the limit of {SMALL_LIMIT} bytes."}


async def test_streamed_body_without_a_length_is_stopped_at_the_limit(
    small_api: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            sent.append(1)
            yield b" " * 1024

    headers = {**bearer(await token_factory("admin")), "content-type": "text/plain"}
    response = await small_api.post("/api/v1/subscriptions/sub_x/test", content=chunks(), headers=headers)
    assert response.status_code == 413
    assert response.json()["message"].startswith("The request body is larger than the limit")


async def test_a_streamed_publish_without_a_length_is_stopped_at_the_ingest_limit(
    settings: Settings, runtime: Runtime, token_factory: TokenFactory
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    async with api_with(settings, ingest_max_body_bytes=SMALL_LIMIT) as client:
        response = await client.post("/api/v1/events", content=chunks(), headers=bearer(await token_factory("admin")))
    assert response.status_code == 413
    assert response.json() == {"message": f"The request body is larger than the limit of {SMALL_LIMIT} bytes."}


async def test_unauthenticated_body_is_refused_before_a_byte_of_it_is_read(runtime: Runtime) -> None:
    app = create_app(runtime)
    sent: list[dict[str, Any]] = []
    read: list[bool] = []

    async def receive() -> dict[str, Any]:
        read.append(True)
        return {"type": "http.request", "body": b"{" * 100_000, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": V2,
        "raw_path": V2.encode(),
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"100000")],
        "scheme": "http",
        "server": ("chargewire.test", 80),
        "client": ("127.0.0.1", 1234),
        "root_path": "",
        "http_version": "1.1",
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 401
    assert read == []


@pytest.mark.parametrize("depth", [40, 300, 1100])
async def test_json_nested_past_the_limit_is_422_never_500(
    api: httpx.AsyncClient, token_factory: TokenFactory, depth: int
) -> None:
    body = json.dumps(_subscription(filter={"x": {"$eq": "NESTED"}})).replace('"NESTED"', _nested(depth))
    headers = {**bearer(await token_factory("notifications:manage")), "content-type": "application/json"}
    response = await api.post(V2, content=body, headers=headers)
    assert response.status_code == 422
    [field] = response.json()["errors"]
    assert response.json()["errors"][field] == ["JSON may nest at most 32 levels."]


async def test_ingest_refuses_json_nested_past_the_limit_with_422(
    api: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    payload = {**load_event_types()["BootNotification"].example, "extra": "NESTED"}
    body = json.dumps(payload).replace('"NESTED"', _nested(300))
    response = await api.post("/api/v1/events", content=body, headers=bearer(await token_factory()))
    assert response.status_code == 422


async def test_integer_beyond_64_bits_is_422_naming_its_field_not_a_float(
    api: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    body = json.dumps(_subscription(filter={"chargePointId": 123456789012345678901234567890}))
    headers = {**bearer(await token_factory("notifications:manage")), "content-type": "application/json"}
    response = await api.post(V2, content=body, headers=headers)
    assert response.status_code == 422
    assert response.json()["errors"] == {"filter.chargePointId": ["Integers must fit in 64 bits (-2^63 to 2^63-1)."]}


async def test_ingest_refuses_an_integer_beyond_64_bits_naming_its_field(
    api: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    payload = {**load_event_types()["BootNotification"].example, "big": -(2**64)}
    response = await api.post("/api/v1/events", content=json.dumps(payload), headers=bearer(await token_factory()))
    assert response.status_code == 422
    assert list(response.json()["errors"]) == ["big"]


async def test_integers_within_64_bits_and_long_digit_strings_pass(
    api: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    payload = {**load_event_types()["BootNotification"].example, "big": 2**63 - 1, "note": "1234567890123456789012"}
    response = await api.post("/api/v1/events", content=json.dumps(payload), headers=bearer(await token_factory()))
    assert response.status_code == 202
