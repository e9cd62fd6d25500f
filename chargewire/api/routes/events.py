"""Ingest: `POST /api/v1/events` takes one event payload or a JSON array of them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from chargewire.api.auth import require_scope, runtime_of, token_holding
from chargewire.api.body import json_body, read_body
from chargewire.catalog import load_event_types
from chargewire.models import ApiToken, Scope
from chargewire.runtime import Runtime
from chargewire.services.idempotency import HEADER, KEY_MAX_CHARS

PATH = "/api/v1/events"


class Accepted(BaseModel):
    """The ids of the stored events, in the order they were sent."""

    data: list[str]


_require_publisher = require_scope(Scope.EVENTS_PUBLISH)
_HEADER_NAME = HEADER.lower().encode("latin-1")


class _PublishRoute(APIRoute):
    """The publish route: documented from `publish_events`' signature, served without FastAPI's request wrapping.

    Solving the token dependency and the one header took about a third of the ingress CPU of a publish, and
    FastAPI's request wrapper (two exit stacks and a second exception wrapper, for dependencies with `yield`
    and files this route has none of) a tenth more (`bench.http_ingress`). The route reads the token and the
    header by hand, as FastAPI would (the header's first value, or None); an error it raises goes to the app's
    exception handlers as before, through Starlette's `ExceptionMiddleware`, which applies the same handlers.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        super().__init__(path, endpoint, **options)
        self.app = _publish


async def _publish(scope: AsgiScope, receive: Receive, send: Send) -> None:
    request = Request(scope, receive, send)
    response = await publish_events(request, await _require_publisher(request), idempotency_key_of(scope["headers"]))
    await response(scope, receive, send)


def idempotency_key_of(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The request's `Idempotency-Key` (its first, as FastAPI reads a header), if any."""
    return next((value.decode("latin-1") for name, value in headers if name == _HEADER_NAME), None)


async def publish_read(runtime: Runtime, scope: AsgiScope, read: Callable[[], Awaitable[bytes]]) -> Response:
    """The answer to a publish past the request layer whose body `read` gives (`api.ingress`'s direct path), as
    `publish_events` answers it: the token's scope, then the body, then `accept`."""
    token = await token_holding(scope, runtime.tokens, Scope.EVENTS_PUBLISH)
    return await accept(runtime, token, idempotency_key_of(scope["headers"]), await read())


async def accept(runtime: Runtime, token: ApiToken, idempotency_key: str | None, raw: bytes) -> Response:
    """Parse, validate and store the events of a publish's body; the 202 with their ids."""
    body = json_body(raw, runtime.settings.api_max_json_depth)
    payloads = body if isinstance(body, list) else [body]
    if idempotency_key is None:
        return _Accepted(await runtime.publisher.publish(payloads), replayed=False)
    result = await runtime.idempotent.publish(payloads, token.id, idempotency_key)
    return _Accepted(result.event_ids, replayed=result.replayed)


_JSON_TYPE = (b"content-type", b"application/json")
_REPLAYED = (b"idempotent-replayed", b"true")


class _Accepted(Response):
    """A publish's 202 with its event ids: the headers Starlette's `Response` would give it, in its order, made
    without its general-purpose checks (a third of the answer's Python, ~10 us, on every publish)."""

    media_type = "application/json"

    def __init__(self, event_ids: list[str], *, replayed: bool) -> None:
        self.status_code = 202
        self.background = None
        # orjson: the standard encoder takes ~0.2 us an id, some 20 times as long, with batches of 1,000 ids.
        self.body = orjson.dumps({"data": event_ids})
        length = (b"content-length", b"%d" % len(self.body))
        self.raw_headers = [_REPLAYED, length, _JSON_TYPE] if replayed else [length, _JSON_TYPE]


# The catalog's own example, so the documented body is always one the catalog accepts.
_EXAMPLE_BODY: dict[str, Any] = load_event_types()["HardwareStatusNotification"].example

_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not JSON"},
    401: {"description": "Token missing or invalid"},
    403: {"description": "The token lacks the events:publish scope"},
    409: {
        "description": "Rare: another publish stored this `Idempotency-Key` at the same moment, and its record"
        " was already swept; retry with the same key"
    },
    413: {"description": "The body is over the size limit"},
    422: {
        "description": "A payload failed validation; `errors` maps `index.field.path` (`0.timestamp`) to messages."
        " Or the `Idempotency-Key` is invalid, or was used before with a different body: `errors` names it"
    },
    503: {
        "description": "The database is unavailable; retry after `Retry-After` seconds, with the same"
        " `Idempotency-Key`, so that a publish stored after all is not stored twice"
    },
}

# The body is read by hand (size limit while streaming, exact bytes); this documents it.
_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"type": "object", "required": ["notification"]},
                        {"type": "array", "items": {"type": "object", "required": ["notification"]}},
                    ]
                },
                "example": _EXAMPLE_BODY,
            }
        },
    }
}


def install_publish(app: FastAPI) -> None:
    """Serve `POST /api/v1/events` on the app's own router, ahead of the included routers.

    Not as an included router's route: FastAPI matches those twice per request, through the inclusion's
    contexts, which took a quarter of the ingress's Python calls (`bench.http_ingress`); on the app's router the
    route is one regular expression and a method check. The document says the same either way.
    """
    app.router.add_api_route(
        PATH,
        publish_events,
        methods=["POST"],
        route_class_override=_PublishRoute,
        tags=["events"],
        status_code=202,
        response_model=Accepted,
        summary="Publish events",
        responses=_RESPONSES,
        openapi_extra=_REQUEST_BODY,
    )


async def publish_events(
    request: Request,
    token: Annotated[ApiToken, Depends(_require_publisher)],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            description=f"Optional; 1 to {KEY_MAX_CHARS} visible ASCII characters (a UUID will do), unique per"
            " publish. A repeat by the same token with the same body, within the retention (24 h by default),"
            " answers the first publish's event ids and publishes nothing; with another body it answers 422.",
        ),
    ] = None,
) -> Response:
    """Validate and durably store events; each is delivered to every matching subscription.

    The answer comes after the events and their deliveries are committed. A batch is all or nothing.

    Send an `Idempotency-Key` to retry safely: a publish answered 503 (or never answered) may still have been
    stored, and its retry with the same key and body answers the stored event ids instead of publishing again,
    with `Idempotent-Replayed: true`.

    Types, required fields and allowed values are checked; string formats are not: a `date-time` field
    takes any string (`"yesterday"` too) and is delivered as sent, because the original platform sends some
    dates as `"YYYY-MM-DD hh:mm:ss"` under that format. Send ISO 8601 in UTC.
    """
    runtime = runtime_of(request)
    raw = await read_body(request, runtime.settings.ingest_max_body_bytes)
    return await accept(runtime, token, idempotency_key, raw)
