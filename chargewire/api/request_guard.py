"""What every request body meets before any route sees it: a size limit, the token first, then JSON limits.

- The size is checked from `Content-Length` before anything is read, and counted while the body streams in
  (a chunked body declares none): past the limit the answer is `413 {"message": ...}`.
- On the API (`/api/`, `/public-api/`) a body is read only for a valid token: `401` before the first byte.
- JSON bodies of API routes parsed by FastAPI are read here in full (within the limit), checked for nesting
  depth and 64-bit integers (`422` naming the field), and handed on unchanged. Ingest reads, counts and checks
  its own body while streaming (`api.body`, the same limit and the same 413), so its body is left alone here.
"""

from __future__ import annotations

import contextlib

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import Message, Receive, Scope

from chargewire.api.auth import remember_token, scope_bearer_hash
from chargewire.api.body import body_too_large, parse_json
from chargewire.api.errors import BadRequest
from chargewire.config import Settings
from chargewire.services.tokens import TokenService

API_PREFIXES = ("/api/", "/public-api/")
INGEST_PATH = "/api/v1/events"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class RequestGuard:
    """The body limits and the token-before-body rule, applied to every HTTP request by `RequestLayer`."""

    def __init__(self, settings: Settings, tokens: TokenService) -> None:
        self._settings = settings
        self._tokens = tokens

    async def checked(self, scope: Scope, receive: Receive) -> Receive:
        """The receive the app is to read the body through; raises the ChargewireError to answer instead."""
        if scope["method"] not in _BODY_METHODS:
            return receive
        path = str(scope["path"])
        if path == INGEST_PATH:
            await self.admit_publish(scope)
            return receive
        limit = self._settings.api_max_body_bytes
        _check_declared_size(scope["headers"], limit)
        if path.startswith(API_PREFIXES):
            await self._authenticate(scope)
            if _is_json(Request(scope)):
                receive = await self._checked_json(receive, limit)
        return _counting(receive, limit)

    async def admit_publish(self, scope: Scope) -> None:
        """What a publish meets before its body is read: its declared size, then its token (kept in `scope`)."""
        _check_declared_size(scope["headers"], self._settings.ingest_max_body_bytes)
        await self._authenticate(scope)

    def publish_fits(self, headers: list[tuple[bytes, bytes]]) -> bool:
        """Whether a publish with these headers declares a size within the limit (False without a declared size)."""
        try:
            return _check_declared_size(headers, self._settings.ingest_max_body_bytes)
        except BadRequest:
            return False

    async def _authenticate(self, scope: Scope) -> None:
        remember_token(scope, await self._tokens.authenticate_hash(scope_bearer_hash(scope)))

    async def _checked_json(self, receive: Receive, limit: int) -> Receive:
        """Read the whole body (within `limit`), check it, and return a receive that hands it on."""
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            body.extend(message.get("body", b""))
            if len(body) > limit:
                raise body_too_large(limit)
            more = bool(message.get("more_body"))
        # A body that is not JSON at all is left to the route, which names it in its own shape (422 on `(body)`).
        with contextlib.suppress(BadRequest):
            parse_json(bytes(body), self._settings.api_max_json_depth)
        return _replaying(bytes(body), receive)


def _check_declared_size(headers: list[tuple[bytes, bytes]], limit: int) -> bool:
    """Raise the 413 when `Content-Length` declares more than `limit`; whether a size within it was declared."""
    # From the scope's own list (the server gives names in lower case): most requests are publishes, and a
    # Request with its Headers is built here for them only to read this.
    for name, value in headers:
        if name == b"content-length":
            if value.isdigit() and int(value) > limit:
                raise body_too_large(limit)
            return value.isdigit()
    return False


def _is_json(request: Request) -> bool:
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that gives `body` once, then passes on to the real one (for the disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _counting(receive: Receive, limit: int) -> Receive:
    """A receive that stops a body growing past `limit` while it streams in."""
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > limit:
            # An HTTPException, so that FastAPI passes it on as it is instead of calling the body unreadable.
            raise HTTPException(413, body_too_large(limit).message)
        return message

    return counted
