"""Bearer-token authentication and scope checks, as FastAPI dependencies.

The bearer text is read and hashed once per request and the token authenticated once: the rate limits, the request
guard and the route's scope check all need them, and each read, hashed and looked up again (`bench.http_ingress`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request
from starlette.types import Scope as AsgiScope

from chargewire.errors import PermissionDenied
from chargewire.models import ApiToken, Scope
from chargewire.runtime import Runtime
from chargewire.security import token_hash
from chargewire.services.tokens import TokenService


def runtime_of(request: Request) -> Runtime:
    """The runtime the app was built with."""
    runtime: Runtime = request.app.state.runtime
    return runtime


_BEARER = "chargewire.bearer"  # scope keys: the bearer text, its hash, and the token it authenticated
_BEARER_HASH = "chargewire.bearer_hash"
_AUTHENTICATED = "chargewire.authenticated"


def scope_bearer_text(scope: AsgiScope) -> str | None:
    """The token text of a request's `Authorization: Bearer` header (its first), if any; read once per request."""
    if _BEARER not in scope:
        header = next((value for key, value in scope["headers"] if key == b"authorization"), b"").decode("latin-1")
        scheme, _, value = header.partition(" ")
        scope[_BEARER] = value.strip() if scheme.lower() == "bearer" and value.strip() else None
    text: str | None = scope[_BEARER]
    return text


def scope_bearer_hash(scope: AsgiScope) -> str | None:
    """The hash of the request's bearer text (the rate limits' key, the token lookup's), if any; hashed once."""
    if _BEARER_HASH not in scope:
        text = scope_bearer_text(scope)
        scope[_BEARER_HASH] = None if text is None else token_hash(text)
    hashed: str | None = scope[_BEARER_HASH]
    return hashed


def remember_token(scope: AsgiScope, token: ApiToken) -> None:
    """Keep the token a request authenticated with, for its scope check."""
    scope[_AUTHENTICATED] = token


def require_scope(scope: Scope) -> Callable[[Request], Awaitable[ApiToken]]:
    """A dependency that authenticates the caller and checks that the token holds `scope`."""

    async def dependency(request: Request) -> ApiToken:
        return await token_holding(request.scope, runtime_of(request).tokens, scope)

    return dependency


async def token_holding(request: AsgiScope, tokens: TokenService, scope: Scope) -> ApiToken:
    """The request's token (authenticated now unless the guard did already), if it holds `scope`; else
    Unauthenticated or PermissionDenied."""
    token: ApiToken | None = request.get(_AUTHENTICATED)
    if token is None:
        token = await tokens.authenticate_hash(scope_bearer_hash(request))
    if not token.allows(scope):
        # The contract's sentence first, so clients that match it still do; then what would be allowed.
        raise PermissionDenied(f"{PermissionDenied.__doc__} It needs a token with the {scope} scope.")
    return token
