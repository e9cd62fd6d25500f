"""Bearer-token authentication and scope checks, as FastAPI dependencies.

The bearer text is read once per request and the token authenticated once: the rate limits, the request guard
and the route's scope check all need them, and each read and lookup again (`bench.http_ingress`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from starlette.types import Scope as AsgiScope

from chargewire.errors import PermissionDenied
from chargewire.models import ApiToken, Scope
from chargewire.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    """The runtime the app was built with."""
    runtime: Runtime = request.app.state.runtime
    return runtime


_BEARER = "chargewire.bearer"  # scope keys: the bearer text, and the token it authenticated
_AUTHENTICATED = "chargewire.authenticated"


def bearer_text(request: Request) -> str | None:
    """The token text of an `Authorization: Bearer` header, if any."""
    return scope_bearer_text(request.scope)


def scope_bearer_text(scope: AsgiScope) -> str | None:
    """The token text of a request's `Authorization: Bearer` header (its first), if any; read once per request."""
    if _BEARER not in scope:
        header = next((value for key, value in scope["headers"] if key == b"authorization"), b"").decode("latin-1")
        scheme, _, value = header.partition(" ")
        scope[_BEARER] = value.strip() if scheme.lower() == "bearer" and value.strip() else None
    text: str | None = scope[_BEARER]
    return text


def remember_token(scope: AsgiScope, token: ApiToken) -> None:
    """Keep the token a request authenticated with, for its scope check."""
    scope[_AUTHENTICATED] = token


def require_scope(scope: Scope) -> Callable[[Request], Awaitable[ApiToken]]:
    """A dependency that authenticates the caller and checks that the token holds `scope`."""

    async def dependency(request: Request) -> ApiToken:
        token: ApiToken | None = request.scope.get(_AUTHENTICATED)
        if token is None:
            token = await runtime_of(request).tokens.authenticate(bearer_text(request))
        if not token.allows(scope):
            # The contract's sentence first, so clients that match it still do; then what would be allowed.
            raise PermissionDenied(f"{PermissionDenied.__doc__} It needs a token with the {scope} scope.")
        return token

    return dependency
