"""Fuzzing the HTTP API from its own OpenAPI schema (schemathesis strategies driven by hypothesis).

Valid and invalid requests for every documented operation, sent with a token of each scope to the app in
process: no request may get a 5xx, every 422 must be `{message, errors: {field: [messages]}}` with named fields,
and every response of the notifications API must match the status codes and schemas its OpenAPI entries declare.
`CHARGEWIRE_FUZZ_EXAMPLES` sets the number of requests per backend with the admin token (default 300, a few
seconds; a fifth of that with each other scope); a long run sets it to thousands.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.openapi import from_dict
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chargewire.config import Settings
from chargewire.runtime import Runtime
from chargewire.services.subscriptions import OPERATOR
from chargewire.store import migrate
from chargewire.store.database import create_database
from chargewire.web import create_app

MAX_EXAMPLES = int(os.environ.get("CHARGEWIRE_FUZZ_EXAMPLES", "300"))
SCOPES = ("admin", "notifications:manage", "events:publish", "metrics:read")
BASE_URL = "http://chargewire.test"
PATH_IDS = ("notification", "subscription_id")
# Every operation must never answer 5xx; the notifications API's own operations must also answer only the
# status codes, content types and shapes their OpenAPI entries declare.
CHECKS = [not_a_server_error]
CONFORMANCE_CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]
CONFORMANCE_PATHS = ("/public-api/", "/api/v1/subscriptions/{subscription_id}/rotate-secret")


class FuzzTarget:
    """The app on its own event loop: hypothesis runs synchronously, the app and its database asynchronously."""

    def __init__(self, settings: Settings) -> None:
        self.loop = asyncio.new_event_loop()
        self.runtime: Runtime = self.loop.run_until_complete(self._open(settings))
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(self.runtime)), base_url=BASE_URL)

    @staticmethod
    async def _open(settings: Settings) -> Runtime:
        database = create_database(settings.effective_database_url)
        await migrate.upgrade(database)
        await database.aclose()
        return await Runtime.open(settings)

    def run(self, coroutine: Any) -> Any:
        """Run a coroutine on the target's loop."""
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        """Close the client, the runtime and the loop."""
        self.run(self.client.aclose())
        self.run(self.runtime.aclose())
        self.loop.close()


@pytest.fixture
def target(settings: Settings) -> Iterator[FuzzTarget]:
    # Fuzzing sends far more than a minute's allowance of requests; the limiter has its own tests.
    unlimited = {"api_rate_limit_per_minute": 10**9, "outgoing_rate_limit_per_minute": 10**9}
    opened = FuzzTarget(settings.model_copy(update=unlimited))
    try:
        yield opened
    finally:
        opened.close()


def _seed(target: FuzzTarget, scope: str) -> tuple[str, list[str]]:
    """A token of `scope` and two real subscriptions of it (or of another token), so fuzzed ids hit records."""

    async def seed() -> tuple[str, list[str]]:
        fuzzing = await target.runtime.tokens.create("fuzz", [scope])
        owns = scope in ("admin", "notifications:manage")
        created = fuzzing if owns else await target.runtime.tokens.create("owner", ["notifications:manage"])
        ids = []
        for body in (
            {"via": "webhook", "notifications": ["BootNotification"], "webhook": {"callbackUrl": "http://127.0.0.1/"}},
            {"via": "kafka", "notifications": ["cdr.received"], "kafka": {"topic": "t", "brokers": ["127.0.0.1:9092"]}},
        ):
            ids.append((await target.runtime.subscriptions.create(created.token, body)).subscription.id)
        assert await target.runtime.subscriptions.get(OPERATOR, ids[0])
        return fuzzing.text, ids

    result: tuple[str, list[str]] = target.run(seed())
    return result


def _is_notifications_api(path: str) -> bool:
    return path.startswith(CONFORMANCE_PATHS)


def _cases(schema_dict: dict[str, Any], seeded_ids: list[str], notifications_api: bool) -> st.SearchStrategy[Case]:
    schema = from_dict(schema_dict)
    strategies = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if _is_notifications_api(operation.path) is not notifications_api:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategies.append(operation.as_strategy(generation_mode=mode))
            names = [name for name in PATH_IDS if "{" + name + "}" in operation.path]
            for name in names:
                for seeded in seeded_ids:
                    strategies.append(operation.as_strategy(generation_mode=mode, path_parameters={name: seeded}))
    return st.one_of(strategies)


def _request(case: Case, token: str) -> dict[str, Any]:
    sent = case.as_transport_kwargs(base_url=BASE_URL, headers={"Authorization": f"Bearer {token}"})
    request: dict[str, Any] = {
        "method": sent["method"],
        "url": sent["url"],
        "headers": sent.get("headers") or {},
        "params": sent.get("params") or None,
    }
    if "json" in sent:
        request["content"] = json.dumps(sent["json"]).encode()
    elif sent.get("data") is not None:
        data = sent["data"]
        request["content"] = data if isinstance(data, bytes) else str(data).encode()
    return request


def _check_422(response: httpx.Response) -> None:
    body = response.json()
    assert isinstance(body, dict), response.text
    assert isinstance(body.get("message"), str), response.text
    errors = body.get("errors")
    assert isinstance(errors, dict), response.text
    assert errors, response.text
    for field, messages in errors.items():
        assert field.strip(), response.text
        assert isinstance(messages, list), response.text
        assert messages, response.text
        assert all(isinstance(message, str) for message in messages), response.text


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("part", ["notifications API", "rest of the API"])
def test_fuzzed_requests_never_get_a_5xx_and_every_422_names_its_fields(
    target: FuzzTarget, part: str, scope: str
) -> None:
    notifications_api = part == "notifications API"
    token, seeded_ids = _seed(target, scope)
    examples = MAX_EXAMPLES if scope == "admin" else max(1, MAX_EXAMPLES // 5)
    app_schema = target.client._transport.app.openapi()  # type: ignore[attr-defined]
    statuses: dict[int, int] = {}

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=_cases(app_schema, seeded_ids, notifications_api))
    def send(case: Case) -> None:
        response: httpx.Response = target.run(target.client.request(**_request(case, token)))
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
        if response.status_code == 422:
            _check_422(response)
        case.validate_response(response, checks=CHECKS + (CONFORMANCE_CHECKS if notifications_api else []))

    send()
    if scope != "admin":
        return  # most of what a narrower token sends is refused (403) before validation
    # The run must have reached past authentication and validation, or it tested little.
    assert statuses.get(422, 0) > 0, statuses
    assert any(200 <= status < 300 for status in statuses), statuses
    if notifications_api:
        assert statuses.get(201, 0) > 0, statuses
