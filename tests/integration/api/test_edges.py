"""Edges: links never built from the Host header, /metrics behind a scope, token names within their column."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from chargewire.config import Settings
from chargewire.errors import ValidationFailed
from chargewire.runtime import Runtime
from tests.conftest import TokenFactory, bearer
from tests.integration.api.conftest import api_with

V2 = "/public-api/notifications/v2.0"
V1 = "/public-api/notifications/v1.0"


async def _two_subscriptions(api: httpx.AsyncClient, headers: dict[str, str]) -> None:
    body = {"via": "webhook", "notifications": ["BootNotification"], "webhook": {"callbackUrl": "http://127.0.0.1:9/"}}
    for _ in range(2):
        assert (await api.post(V2, json=body, headers=headers)).status_code == 201


def _links(body: dict[str, object]) -> list[str]:
    links = body["links"]
    meta = body["meta"]
    assert isinstance(links, dict)
    assert isinstance(meta, dict)
    return [value for value in [*links.values(), meta["path"]] if isinstance(value, str)]


@pytest.mark.parametrize("list_url", [V2 + "?per_page=1", V1 + "?per_page=1"])
async def test_pagination_links_never_carry_the_requests_host_header(
    api: httpx.AsyncClient, token_factory: TokenFactory, list_url: str
) -> None:
    headers = bearer(await token_factory("notifications:manage"))
    await _two_subscriptions(api, headers)
    page = await api.get(list_url, headers={**headers, "Host": "evil.example"})
    links = _links(page.json())
    assert links
    assert all(link.startswith("/public-api/") for link in links), links


@pytest.fixture
async def based_api(settings: Settings, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    async with api_with(settings, public_base_url="https://chargewire.example.com/") as client:
        yield client


async def test_pagination_links_start_with_the_configured_public_base_url(
    based_api: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    headers = bearer(await token_factory("notifications:manage"))
    await _two_subscriptions(based_api, headers)
    page = await based_api.get(V2 + "?per_page=1", headers={**headers, "Host": "evil.example"})
    assert page.json()["links"]["next"].startswith("https://chargewire.example.com/public-api/notifications/v2.0?")


async def test_metrics_need_a_token_with_metrics_read(api: httpx.AsyncClient, token_factory: TokenFactory) -> None:
    assert (await api.get("/metrics")).status_code == 401
    manager = bearer(await token_factory("notifications:manage"))
    assert (await api.get("/metrics", headers=manager)).status_code == 403
    for scope in ("metrics:read", "admin"):
        answer = await api.get("/metrics", headers=bearer(await token_factory(scope)))
        assert answer.status_code == 200
        assert "chargewire_delivery_queue_depth" in answer.text


async def test_token_name_longer_than_its_column_is_422_naming_the_field(runtime: Runtime) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await runtime.tokens.create("n" * 300, ["admin"])
    assert list(refused.value.errors) == ["name"]
