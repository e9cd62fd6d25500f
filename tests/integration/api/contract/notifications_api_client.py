"""A tiny client of the Notifications API, written only from `reference/notifications-api.md`.

It knows the contract's paths, bodies and response shapes and nothing of chargewire: it imports nothing from
the package, and every shape check here is a sentence of that document. Tests drive it through any
`httpx.AsyncClient` (in process, or a real server).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

V2 = "/public-api/notifications/v2.0"
V1 = "/public-api/notifications/v1.0"
RESEND = "/public-api/actions/notifications/v1.0/{notification}/resend"
UNAUTHORIZED_MESSAGE = "This action is unauthorized."

KAFKA_FIELDS = {"topic", "brokers", "compressionCodec", "securityProtocol", "saslMechanism", "saslUsername"}
CURSOR_META = {"path", "per_page", "next_cursor", "prev_cursor"}
PAGE_META = {"current_page", "from", "last_page", "links", "path", "per_page", "to", "total"}
LINKS = {"first", "last", "prev", "next"}

# Event names from the contract's reference (`event-schemas.json`), and a callback on loopback.
EVENTS = ["BootNotification", "HardwareStatusNotification", "SessionStartStopNotification"]
CALLBACK = "http://127.0.0.1:9/notifications"


def webhook_body(callback_url: str = CALLBACK, events: list[str] | None = None) -> dict[str, Any]:
    """A v2.0 webhook body."""
    return {
        "via": "webhook",
        "notifications": EVENTS[:2] if events is None else events,
        "webhook": {"callbackUrl": callback_url},
    }


def kafka_body(**kafka: object) -> dict[str, Any]:
    """A v2.0 Kafka body with only the required kafka fields unless more are given."""
    return {
        "via": "kafka",
        "notifications": EVENTS[:1],
        "kafka": {"topic": "charging-events", "brokers": ["kafka-1.example.net:9092"], **kafka},
    }


class ContractViolation(AssertionError):
    """The server answered in a shape the contract does not describe."""


def _require(condition: bool, what: str, response: httpx.Response) -> None:
    if not condition:
        raise ContractViolation(
            f"{what}: {response.request.method} {response.request.url} -> {response.status_code} {response.text[:500]}"
        )


def check_error(response: httpx.Response) -> dict[str, Any]:
    """An error body: `{"message"}`, plus `errors: {field: [messages]}` on a 422, `X-RateLimit-*` on a 429."""
    body = response.json()
    _require(isinstance(body, dict) and isinstance(body.get("message"), str), "error without message", response)
    if response.status_code == 403:
        _require(body["message"].startswith(UNAUTHORIZED_MESSAGE), "403 message", response)
    if response.status_code == 422:
        errors = body.get("errors")
        _require(isinstance(errors, dict) and bool(errors), "422 without errors", response)
        for field, messages in errors.items():
            _require(isinstance(field, str) and bool(field), "422 field name", response)
            _require(
                isinstance(messages, list) and all(isinstance(m, str) for m in messages) and bool(messages),
                "422 messages",
                response,
            )
    if response.status_code == 429:
        _require("X-RateLimit-Limit" in response.headers, "429 without X-RateLimit-Limit", response)
        _require("X-RateLimit-Remaining" in response.headers, "429 without X-RateLimit-Remaining", response)
    return body


def check_subscription(data: Any, response: httpx.Response) -> dict[str, Any]:
    """`{id, via, notifications[], webhook?: {callbackUrl}, kafka?: {...}}`; `saslPassword` is never shown."""
    _require(isinstance(data, dict), "subscription is an object", response)
    _require(isinstance(data.get("id"), str | int), "id", response)
    _require(data.get("via") in ("webhook", "kafka"), "via", response)
    _require(isinstance(data.get("notifications"), list), "notifications", response)
    if data["via"] == "webhook":
        _require(isinstance(data.get("webhook"), dict), "webhook object", response)
        _require(isinstance(data["webhook"].get("callbackUrl"), str), "webhook.callbackUrl", response)
    else:
        kafka = data.get("kafka")
        _require(isinstance(kafka, dict) and set(kafka) >= KAFKA_FIELDS, "kafka object", response)
        _require(kafka.get("saslPassword") is None, "saslPassword is not returned", response)
    return data


def check_webhook_v1(data: Any, response: httpx.Response) -> dict[str, Any]:
    """`{webhookId, notifications[], callbackUrl}`."""
    _require(isinstance(data, dict), "webhook is an object", response)
    _require(isinstance(data.get("webhookId"), str | int), "webhookId", response)
    _require(isinstance(data.get("notifications"), list), "notifications", response)
    _require(isinstance(data.get("callbackUrl"), str), "callbackUrl", response)
    return data


class NotificationsClient:
    """Calls the API as a contract-only integration would, checking each documented shape and status."""

    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http = http
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    async def call(self, method: str, url: str, json: Any = None) -> httpx.Response:
        """One request with the bearer token; the raw response."""
        return await self.http.request(method, url, json=json, headers=self.headers)

    # v2.0

    async def subscribe(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST v2.0: `201 {"data": subscription}`."""
        response = await self.call("POST", V2, body)
        _require(response.status_code == 201, "subscribe answers 201", response)
        return check_subscription(response.json()["data"], response)

    async def read(self, notification: str) -> dict[str, Any]:
        """GET v2.0/{id}: `200 {"data": subscription}`."""
        response = await self.call("GET", f"{V2}/{notification}")
        _require(response.status_code == 200, "read answers 200", response)
        return check_subscription(response.json()["data"], response)

    async def update(self, notification: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT v2.0/{id} with the same body as POST: `200 {"data": subscription}`."""
        response = await self.call("PUT", f"{V2}/{notification}", body)
        _require(response.status_code == 200, "update answers 200", response)
        return check_subscription(response.json()["data"], response)

    async def unsubscribe(self, notification: str) -> None:
        """DELETE v2.0/{id}: `204`."""
        response = await self.call("DELETE", f"{V2}/{notification}")
        _require(response.status_code == 204, "delete answers 204", response)

    async def list_page(self, url: str) -> dict[str, Any]:
        """GET a v2.0 list URL: `200 {data, links{first,last,prev,next}, meta{path,per_page,next_cursor,...}}`."""
        response = await self.call("GET", url)
        _require(response.status_code == 200, "list answers 200", response)
        body = response.json()
        _require(set(body.get("links", {})) >= LINKS, "list links", response)
        _require(set(body.get("meta", {})) >= CURSOR_META, "list meta", response)
        for item in body["data"]:
            check_subscription(item, response)
        return body

    async def list_all(self, per_page: int | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every page of the v2.0 list, following `links.next` to the end."""
        url = V2 if per_page is None else f"{V2}?per_page={per_page}"
        while url:
            page = await self.list_page(url)
            yield page
            url = page["links"]["next"]

    async def resend(self, notification: str, body: dict[str, Any]) -> httpx.Response:
        """POST the resend action; the raw response (202, 404, 409, 422, 429)."""
        return await self.call("POST", RESEND.format(notification=notification), body)

    # v1.0 (deprecated, webhooks only)

    async def subscribe_v1(self, callback_url: str, notifications: list[str]) -> dict[str, Any]:
        """POST v1.0: `201 {webhookId, notifications[], callbackUrl}` with no `data` wrapper."""
        response = await self.call("POST", V1, {"callbackUrl": callback_url, "notifications": notifications})
        _require(response.status_code == 201, "v1 subscribe answers 201", response)
        body = response.json()
        _require("data" not in body, "v1 create has no data wrapper", response)
        return check_webhook_v1(body, response)

    async def read_v1(self, webhook_id: str) -> dict[str, Any]:
        """GET v1.0/{id}: `{"data": webhook}`."""
        response = await self.call("GET", f"{V1}/{webhook_id}")
        _require(response.status_code == 200, "v1 read answers 200", response)
        return check_webhook_v1(response.json()["data"], response)

    async def update_v1(self, webhook_id: str, callback_url: str, notifications: list[str]) -> dict[str, Any]:
        """PUT v1.0/{id}: `{"data": webhook}`."""
        body = {"callbackUrl": callback_url, "notifications": notifications}
        response = await self.call("PUT", f"{V1}/{webhook_id}", body)
        _require(response.status_code == 200, "v1 update answers 200", response)
        return check_webhook_v1(response.json()["data"], response)

    async def unsubscribe_v1(self, webhook_id: str) -> None:
        """DELETE v1.0/{id}: `204`."""
        response = await self.call("DELETE", f"{V1}/{webhook_id}")
        _require(response.status_code == 204, "v1 delete answers 204", response)

    async def list_v1_page(self, url: str) -> dict[str, Any]:
        """GET a v1.0 list URL: `{data, links, meta{current_page, from, last_page, links[], path, per_page, ...}}`."""
        response = await self.call("GET", url)
        _require(response.status_code == 200, "v1 list answers 200", response)
        body = response.json()
        _require(set(body.get("links", {})) >= LINKS, "v1 list links", response)
        _require(set(body.get("meta", {})) >= PAGE_META, "v1 list meta", response)
        _require(isinstance(body["meta"]["links"], list), "v1 meta.links is a list", response)
        for item in body["data"]:
            check_webhook_v1(item, response)
        return body
