"""What the fuzzers of the HTTP API share: the app on its own loop, seeded records, requests, and the checks.

Hypothesis and schemathesis run synchronously; the app and its database asynchronously, so the target keeps
one event loop of its own and runs each request on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.core.transport import Response
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

SCOPES = ("admin", "notifications:manage", "events:publish", "metrics:read")
BASE_URL = "http://chargewire.test"
# Every operation must never answer 5xx; the notifications API's own operations must also answer only the
# status codes, content types and shapes their OpenAPI entries declare.
CHECKS = [not_a_server_error]
CONFORMANCE_CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]
CONFORMANCE_PATHS = ("/public-api/", "/api/v1/subscriptions/{subscription_id}/rotate-secret")


def env_count(name: str, default: int) -> int:
    """A count from the environment (a long run sets it), else the default of the suite's short run."""
    return int(os.environ.get(name, str(default)))


class FuzzTarget:
    """The app on its own event loop, called through an in-process HTTP client."""

    def __init__(self, settings: Settings) -> None:
        self.loop = asyncio.new_event_loop()
        self.runtime: Runtime = self.loop.run_until_complete(self._open(settings))
        self.app = create_app(self.runtime)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=BASE_URL)

    @staticmethod
    async def _open(settings: Settings) -> Runtime:
        database = create_database(settings.effective_database_url)
        await migrate.upgrade(database)
        await database.aclose()
        return await Runtime.open(settings)

    def run(self, coroutine: Any) -> Any:
        """Run a coroutine on the target's loop."""
        return self.loop.run_until_complete(coroutine)

    def send(self, case: Case, token: str) -> httpx.Response:
        """Send a generated case with the token as its bearer."""
        response: httpx.Response = self.run(self.client.request(**_request(case, token)))
        return response

    def close(self) -> None:
        """Close the client, the runtime and the loop."""
        self.run(self.client.aclose())
        self.run(self.runtime.aclose())
        self.loop.close()


@contextlib.contextmanager
def fuzz_target(settings: Settings) -> Iterator[FuzzTarget]:
    """A target without rate limits: fuzzing sends far more than a minute's allowance (the limiter has its tests)."""
    unlimited = {"api_rate_limit_per_minute": 10**9, "outgoing_rate_limit_per_minute": 10**9}
    opened = FuzzTarget(settings.model_copy(update=unlimited))
    try:
        yield opened
    finally:
        opened.close()


def seed(target: FuzzTarget, scope: str) -> tuple[str, list[str]]:
    """A token of `scope` and two real subscriptions of it (or of another token), so fuzzed ids hit records."""

    async def create() -> tuple[str, list[str]]:
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

    result: tuple[str, list[str]] = target.run(create())
    return result


def is_notifications_api(path: str) -> bool:
    """Whether the operation is one whose answers must conform to its OpenAPI entry."""
    return path.startswith(CONFORMANCE_PATHS)


def check_answer(case: Case, response: httpx.Response | Response) -> None:
    """No 5xx, a 422 that names its fields, and conformance where the notifications API promises it."""
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text}"
    if response.status_code == 422:
        check_422(response)
    conformance = CONFORMANCE_CHECKS if is_notifications_api(case.operation.path) else []
    case.validate_response(response, checks=CHECKS + conformance)


def check_422(response: httpx.Response | Response) -> None:
    """A 422 is `{message, errors: {field: [messages]}}` with every field named."""
    body = response.json()
    assert isinstance(body, dict), response.text
    assert isinstance(body.get("message"), str), response.text
    errors = body.get("errors")
    assert isinstance(errors, dict), response.text
    assert errors, response.text
    for field, messages in errors.items():
        # Named as sent: a key of blanks or control characters ("\x1f", which str.strip() removes) is its own name.
        assert field, response.text
        assert isinstance(messages, list), response.text
        assert messages, response.text
        assert all(isinstance(message, str) for message in messages), response.text


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
