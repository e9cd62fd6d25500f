"""The Notifications API v2.0: `/public-api/notifications/v2.0[/{notification}]`, webhook and Kafka subscriptions.

Bodies and responses follow the contract (`reference/notifications-api.md`); chargewire's extensions are
optional added fields. The Pydantic models document the API at `/docs` and check types; the service checks
the rest, so the CLI gets the same rules.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from chargewire.api.auth import require_scope, runtime_of
from chargewire.api.links import cursor_page_links
from chargewire.catalog import load_event_types
from chargewire.channels.registry import channel_names, channel_type, channel_types
from chargewire.channels.webhook_type import MAX_CALLBACK_URL_LENGTH
from chargewire.kafka.channel_type import TOPIC_PATTERN
from chargewire.models import BROKER_PATTERN, ApiToken, Scope, Subscription
from chargewire.services.subscription_spec import MAX_DESCRIPTION_LENGTH, MAX_RETRY_STEPS
from chargewire.services.subscriptions import MAX_PER_PAGE, Caller, CursorPage

router = APIRouter(prefix="/public-api/notifications/v2.0", tags=["notifications v2.0"])

ManageToken = Annotated[ApiToken, Depends(require_scope(Scope.NOTIFICATIONS_MANAGE))]


class Message(BaseModel):
    """An error: `401`, `403` ("This action is unauthorized."), `404`, `409`, `429` ("Too Many Attempts.")."""

    message: str


class ValidationMessage(BaseModel):
    """A `422`: each invalid field, named by its path (`kafka.brokers.0`), with what is wrong with it."""

    message: str
    errors: dict[str, list[str]]


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Message, "description": "The body is not text (not UTF-8), so it cannot be read at all"},
    401: {"model": Message, "description": "Token missing or invalid"},
    403: {"model": Message, "description": "The token lacks notifications:manage, or the subscription is not its"},
    422: {"model": ValidationMessage, "description": "Invalid input; `errors` names each field"},
    429: {"model": Message, "description": "Too many requests for this token; see Retry-After"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Message, "description": "No such subscription"}}


def document_event_names(schema: dict[str, Any]) -> None:
    """Name the known events in the schema of a `notifications` list (the service gives the 422 for others)."""
    schema["items"] = {"type": "string", "enum": list(load_event_types())}
    schema["uniqueItems"] = True


def check_via(value: object) -> object:
    """A registered channel's name, or pydantic's error for a value outside a `Literal` of their names."""
    names = channel_names()
    if not isinstance(value, str) or value not in names:
        quoted = [repr(name) for name in names]
        expected = " or ".join([", ".join(quoted[:-1]), quoted[-1]]) if len(quoted) > 1 else quoted[0]
        raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
    return value


def document_via(schema: dict[str, Any]) -> None:
    """Name the registered channels in the schema of `via`, as a `Literal` of their names would."""
    title = schema.get("title", "Via")
    schema.clear()
    schema.update(enum=list(channel_names()), title=title, type="string")


# A channel's name: the registered ones, checked and documented when used (a channel may register after import).
ViaName = Annotated[str, BeforeValidator(check_via), Field(json_schema_extra=document_via)]


def document_channel_sections(schema: dict[str, Any]) -> None:
    """Add the body section of each registered channel the model has no field for, from its `section_schema`."""
    properties = schema["properties"]
    for channel in channel_types():
        if channel.section_schema is not None and channel.name not in properties:
            properties[channel.name] = {
                "anyOf": [dict(channel.section_schema), {"type": "null"}],
                "description": f"The target when via is {channel.name}",
            }


# The models gain a section per registered channel when the schema is built, as `via` gains its name.
WITH_CHANNEL_SECTIONS = ConfigDict(json_schema_extra=document_channel_sections)


class WebhookIn(BaseModel):
    """Where a webhook subscription posts its notifications."""

    callbackUrl: str = Field(max_length=MAX_CALLBACK_URL_LENGTH, json_schema_extra={"format": "uri"})


class KafkaIn(BaseModel):
    """The Kafka cluster and topic a subscription produces to. `saslPassword` and `clientKey` are write-only."""

    topic: str = Field(pattern=TOPIC_PATTERN)
    brokers: list[Annotated[str, Field(pattern=BROKER_PATTERN)]] = Field(description="Bootstrap servers, host:port")
    compressionCodec: Literal["none", "gzip", "snappy", "lz4"] | None = "gzip"
    securityProtocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] | None = "PLAINTEXT"
    saslMechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = "PLAIN"
    saslUsername: str | None = None
    saslPassword: str | None = Field(None, description="Stored encrypted; null in responses")
    caCertificate: str | None = Field(None, description="chargewire extension: PEM CA certificate for SSL")
    clientCertificate: str | None = Field(None, description="chargewire extension: PEM client certificate (mTLS)")
    clientKey: str | None = Field(None, description="chargewire extension: PEM client key; stored encrypted")


class SubscriptionIn(BaseModel):
    """The body of POST and PUT. `enabled`, `description`, `filter` and `retrySchedule` are chargewire extensions."""

    model_config = WITH_CHANNEL_SECTIONS
    via: ViaName
    notifications: list[str] = Field(min_length=1, json_schema_extra=document_event_names)
    webhook: WebhookIn | None = Field(None, description="Required when via is webhook")
    kafka: KafkaIn | None = Field(None, description="Required when via is kafka")
    enabled: bool | None = Field(None, description="Extension: false pauses deliveries (default true)")
    description: str | None = Field(None, max_length=MAX_DESCRIPTION_LENGTH, description="Extension: a note")
    filter: dict[str, Any] | None = Field(
        None, description="Extension: only payloads matching it ($eq $in $nin $exists $gt $lt $and $or)"
    )
    retrySchedule: list[Annotated[float, Field(ge=0)]] | None = Field(
        None, min_length=1, max_length=MAX_RETRY_STEPS, description="Extension: seconds before each retry"
    )


class WebhookOut(BaseModel):
    """A webhook target."""

    callbackUrl: str


class KafkaOut(BaseModel):
    """A Kafka target; the secrets are always null."""

    topic: str
    brokers: list[str]
    compressionCodec: str
    securityProtocol: str
    saslMechanism: str | None
    saslUsername: str | None
    saslPassword: None = None
    caCertificate: str | None = None
    clientCertificate: str | None = None
    clientKey: None = None


class SubscriptionOut(BaseModel):
    """A subscription as the API shows it: `webhook` or `kafka` according to `via`."""

    model_config = WITH_CHANNEL_SECTIONS
    id: str
    via: ViaName
    notifications: list[str]
    webhook: WebhookOut | None = None
    kafka: KafkaOut | None = None
    enabled: bool
    description: str | None
    filter: dict[str, Any] | None
    retrySchedule: list[float] | None


class CreatedOut(SubscriptionOut):
    """A new subscription, with its Standard Webhooks signing secret: shown here once and never again."""

    signingSecret: str


class SubscriptionEnvelope(BaseModel):
    """`{"data": subscription}`."""

    data: SubscriptionOut


class CreatedEnvelope(BaseModel):
    """`{"data": subscription}` with the signing secret."""

    data: CreatedOut


class Links(BaseModel):
    """URLs of the neighbouring pages, under the public base URL or else relative (cursor pages: no first, last)."""

    first: str | None
    last: str | None
    prev: str | None
    next: str | None


class CursorMeta(BaseModel):
    """Where the page is and its size."""

    path: str
    per_page: int
    next_cursor: str | None
    prev_cursor: str | None


class SubscriptionList(BaseModel):
    """One page of subscriptions."""

    data: list[SubscriptionOut]
    links: Links
    meta: CursorMeta


def subscription_data(subscription: Subscription) -> dict[str, Any]:
    """The v2.0 JSON of a subscription: the contract's fields, then chargewire's added ones."""
    via = str(subscription.via)
    data: dict[str, Any] = {"id": subscription.id, "via": via}
    data["notifications"] = list(subscription.notifications)
    target = channel_type(via).render(subscription)
    if target is not None:
        data[via] = target
    data["enabled"] = subscription.enabled
    data["description"] = subscription.description
    data["filter"] = subscription.filter
    schedule = subscription.retry_schedule_s
    data["retrySchedule"] = list(schedule) if schedule is not None else None
    return data


def _cursor_list(request: Request, page: CursorPage) -> dict[str, Any]:
    return {
        "data": [subscription_data(item) for item in page.items],
        **cursor_page_links(request, page.per_page, page.next_cursor, page.prev_cursor),
    }


async def body_of(model: SubscriptionIn, request: Request) -> dict[str, Any]:
    """The fields a client actually sent, so a replace can tell "not sent" from null.

    A registered channel without a field of its own here gets its section as sent; its description checks it.
    """
    body = model.model_dump(exclude_unset=True)
    if model.via not in SubscriptionIn.model_fields:
        sent = await request.json()
        body[model.via] = sent.get(model.via)
    return body


@router.post("", status_code=201, response_model=CreatedEnvelope, responses=ERROR_RESPONSES, summary="Subscribe")
async def subscribe(body: SubscriptionIn, request: Request, token: ManageToken) -> JSONResponse:
    """Subscribe a webhook or a Kafka topic to events. The response carries the signing secret, once."""
    created = await runtime_of(request).subscriptions.create(token, await body_of(body, request))
    data = {**subscription_data(created.subscription), "signingSecret": created.signing_secret}
    return JSONResponse({"data": data}, status_code=201)


@router.get("", response_model=SubscriptionList, responses=ERROR_RESPONSES, summary="List subscriptions")
async def list_subscriptions(
    request: Request,
    token: ManageToken,
    per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = MAX_PER_PAGE,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> JSONResponse:
    """The caller's subscriptions in creation order (all of them for admin tokens); follow `links.next`."""
    page = await runtime_of(request).subscriptions.list_page(Caller.of(token), per_page, cursor)
    return JSONResponse(_cursor_list(request, page))


@router.get(
    "/{notification}",
    response_model=SubscriptionEnvelope,
    responses={**ERROR_RESPONSES, **NOT_FOUND},
    summary="Read a subscription",
)
async def read_subscription(notification: str, request: Request, token: ManageToken) -> JSONResponse:
    """One subscription."""
    subscription = await runtime_of(request).subscriptions.get(Caller.of(token), notification)
    return JSONResponse({"data": subscription_data(subscription)})


@router.put(
    "/{notification}",
    response_model=SubscriptionEnvelope,
    responses={**ERROR_RESPONSES, **NOT_FOUND},
    summary="Update a subscription",
)
async def update_subscription(
    notification: str, body: SubscriptionIn, request: Request, token: ManageToken
) -> JSONResponse:
    """Replace a subscription with the same body as POST; extensions not sent keep their values."""
    subscription = await runtime_of(request).subscriptions.replace(
        Caller.of(token), notification, await body_of(body, request)
    )
    return JSONResponse({"data": subscription_data(subscription)})


@router.delete(
    "/{notification}",
    status_code=204,
    response_class=Response,
    responses={**ERROR_RESPONSES, **NOT_FOUND},
    summary="Unsubscribe",
)
async def delete_subscription(notification: str, request: Request, token: ManageToken) -> Response:
    """Remove a subscription; its pending deliveries are dropped."""
    await runtime_of(request).subscriptions.delete(Caller.of(token), notification)
    return Response(status_code=204)
