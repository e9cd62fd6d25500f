"""OpenAPI links: which value of one answer is the id another operation takes.

The served document says, for example, that `data.id` of a created subscription is the `{notification}` of
reading, replacing and deleting it, and the `subscription` filter of the delivery log; that a test send's
`data.deliveryId` is the delivery to inspect or retry. Client generators and readers of `/docs` learn the
API's flow from them, and the stateful fuzzer (`tests/integration/api/test_fuzz_stateful.py`) follows them
to chain calls: create, then rotate twice, delete, then update the deleted one.

Links name their target by `operationId`, looked up in the generated document by method and path, so a
renamed handler cannot leave a link pointing nowhere: a link whose operation is missing fails when the document
is built (`tests/integration/api/test_openapi_links.py` builds it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

_V2 = "/public-api/notifications/v2.0"
_V1 = "/public-api/notifications/v1.0"


@dataclass(frozen=True)
class Consumer:
    """An operation that takes an id, and the parameter it takes it in (`query.` for a query filter)."""

    name: str
    method: str
    path: str
    parameter: str


@dataclass(frozen=True)
class Producer:
    """An answer that carries ids: which value (a runtime expression) is which kind of id."""

    method: str
    path: str
    status: str
    values: tuple[tuple[str, tuple[Consumer, ...]], ...]


SUBSCRIPTION_ID = (
    Consumer("ReadSubscription", "GET", f"{_V2}/{{notification}}", "notification"),
    Consumer("UpdateSubscription", "PUT", f"{_V2}/{{notification}}", "notification"),
    Consumer("Unsubscribe", "DELETE", f"{_V2}/{{notification}}", "notification"),
    Consumer("ResendFailed", "POST", "/public-api/actions/notifications/v1.0/{notification}/resend", "notification"),
    Consumer("RotateSecret", "POST", "/api/v1/subscriptions/{subscription_id}/rotate-secret", "subscription_id"),
    Consumer("SendTestEvent", "POST", "/api/v1/subscriptions/{subscription_id}/test", "subscription_id"),
    Consumer("ListDeliveriesOfSubscription", "GET", "/api/v1/deliveries", "query.subscription"),
)
# A v1.0 webhook is a v2.0 webhook subscription: its id works on both versions.
WEBHOOK_ID = (
    Consumer("ReadWebhook", "GET", f"{_V1}/{{notification}}", "notification"),
    Consumer("UpdateWebhook", "PUT", f"{_V1}/{{notification}}", "notification"),
    Consumer("UnsubscribeWebhook", "DELETE", f"{_V1}/{{notification}}", "notification"),
    *SUBSCRIPTION_ID,
)
DELIVERY_ID = (
    Consumer("ReadDelivery", "GET", "/api/v1/deliveries/{delivery_id}", "delivery_id"),
    Consumer("RetryDelivery", "POST", "/api/v1/deliveries/{delivery_id}/retry", "delivery_id"),
)
EVENT_ID = (Consumer("ListDeliveriesOfEvent", "GET", "/api/v1/deliveries", "query.event"),)
EVENT_TYPE_NAME = (Consumer("ReadEventType", "GET", "/api/v1/event-types/{name}", "name"),)

# What each delivery answer carries: its own id, its subscription's and its event's.
_DELIVERY_VALUES = (
    ("$response.body#/data/id", DELIVERY_ID),
    ("$response.body#/data/subscriptionId", SUBSCRIPTION_ID),
    ("$response.body#/data/eventId", EVENT_ID),
)
PRODUCERS = (
    Producer("POST", _V2, "201", (("$response.body#/data/id", SUBSCRIPTION_ID),)),
    Producer("GET", _V2, "200", (("$response.body#/data/0/id", SUBSCRIPTION_ID),)),
    Producer("GET", f"{_V2}/{{notification}}", "200", (("$response.body#/data/id", SUBSCRIPTION_ID),)),
    Producer("PUT", f"{_V2}/{{notification}}", "200", (("$response.body#/data/id", SUBSCRIPTION_ID),)),
    # After an unsubscribe the id is gone: every operation on it answers 404.
    Producer("DELETE", f"{_V2}/{{notification}}", "204", (("$request.path.notification", SUBSCRIPTION_ID),)),
    Producer("POST", _V1, "201", (("$response.body#/webhookId", WEBHOOK_ID),)),
    Producer("GET", _V1, "200", (("$response.body#/data/0/webhookId", WEBHOOK_ID),)),
    Producer("GET", f"{_V1}/{{notification}}", "200", (("$response.body#/data/webhookId", WEBHOOK_ID),)),
    Producer("PUT", f"{_V1}/{{notification}}", "200", (("$response.body#/data/webhookId", WEBHOOK_ID),)),
    Producer("DELETE", f"{_V1}/{{notification}}", "204", (("$request.path.notification", WEBHOOK_ID),)),
    Producer(
        "POST",
        "/public-api/actions/notifications/v1.0/{notification}/resend",
        "202",
        (("$request.path.notification", SUBSCRIPTION_ID),),
    ),
    Producer(
        "POST",
        "/api/v1/subscriptions/{subscription_id}/rotate-secret",
        "200",
        (("$request.path.subscription_id", SUBSCRIPTION_ID),),
    ),
    Producer(
        "POST",
        "/api/v1/subscriptions/{subscription_id}/test",
        "202",
        (
            ("$response.body#/data/deliveryId", DELIVERY_ID),
            ("$response.body#/data/eventId", EVENT_ID),
            ("$request.path.subscription_id", SUBSCRIPTION_ID),
        ),
    ),
    Producer("GET", "/api/v1/deliveries", "200", (("$response.body#/data/0/id", DELIVERY_ID),)),
    Producer("GET", "/api/v1/deliveries/{delivery_id}", "200", _DELIVERY_VALUES),
    Producer("POST", "/api/v1/deliveries/{delivery_id}/retry", "202", _DELIVERY_VALUES),
    Producer("POST", "/api/v1/events", "202", (("$response.body#/data/0", EVENT_ID),)),
    Producer("GET", "/api/v1/event-types", "200", (("$response.body#/data/0/name", EVENT_TYPE_NAME),)),
)


def add_links(document: dict[str, Any]) -> None:
    """Write every producer's links into the responses of an OpenAPI document, in place."""
    for producer in PRODUCERS:
        response = _operation(document, producer.method, producer.path)["responses"][producer.status]
        links = response.setdefault("links", {})
        for expression, consumers in producer.values:
            for consumer in consumers:
                links[consumer.name] = _link(document, consumer, expression)


def install_links(app: FastAPI) -> None:
    """Make the app's OpenAPI document carry the links, added once when it is first generated."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            add_links(generate())  # generate() keeps the document it returns as app.openapi_schema
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def _link(document: dict[str, Any], consumer: Consumer, expression: str) -> dict[str, Any]:
    target = _operation(document, consumer.method, consumer.path)
    return {
        "operationId": target["operationId"],
        "parameters": {consumer.parameter: expression},
        "description": f"{target.get('summary', consumer.name)}, with `{consumer.parameter}` = `{expression}`",
    }


def _operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    operation: dict[str, Any] = document["paths"][path][method.lower()]
    return operation
