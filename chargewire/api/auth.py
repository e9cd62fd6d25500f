"""Bearer-token authentication and scope checks, as FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from chargewire.errors import PermissionDenied
from chargewire.models import ApiToken, Scope
from chargewire.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    """The runtime the app was built with."""
    runtime: Runtime = request.app.state.runtime
    return runtime


def bearer_text(request: Request) -> str | None:
    """The token text of an `Authorization: Bearer` header, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def require_scope(scope: Scope) -> Callable[[Request], Awaitable[ApiToken]]:
    """A dependency that authenticates the caller and checks that the token holds `scope`."""

    async def dependency(request: Request) -> ApiToken:
        token = await runtime_of(request).tokens.authenticate(bearer_text(request))
        if not token.allows(scope):
            # The contract's sentence first, so clients that match it still do; then what would be allowed.
            raise PermissionDenied(f"{PermissionDenied.__doc__} It needs a token with the {scope} scope.")
        request.state.token = token
        return token

    return dependency
