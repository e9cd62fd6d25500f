"""A shorter way in for `POST /api/v1/events`: uvicorn's httptools protocol, handing publishes to the publish route
behind the app's own layers without the app's router, and answering them in one write.

Nearly every request is a publish. uvicorn hands each to the app, which runs it through Starlette's entry, the
app's layers and the router, which matches the request against its routes (FastAPI's router: two regular
expressions and its route contexts); and uvicorn writes the answer's head and body in two `write` calls, two
loopback sends. Here a request whose method is POST and whose target is exactly the publish path goes to a copy of
that chain whose innermost link is the publish route itself (the same layer objects' state: rate limit windows,
deadline, guard), with the scope the router would have given it; its head waits for its body, so both go out in
one write. Everything else, and a publish with `Expect: 100-continue` (whose
interim answer is written by the same transport), takes uvicorn's own path. Bodies, keep-alive, pipelining,
disconnects, shutdown and logging stay uvicorn's: the request's cycle, `receive` and `send` are its own.

Coupled to uvicorn 0.54.0's `HttpToolsProtocol` (`on_headers_complete` reads `self.app` and makes `self.cycle`;
`self.url` holds the target; the cycle writes through `cycle.transport`), and to what FastAPI 0.165's entry and
router do besides (`_plain_entry`): tests/unit/api/test_ingress_coupling.py fails if these change.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Match, Router
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from chargewire.api.routes.events import PATH

_TARGET = PATH.encode("ascii")
_POST = b"POST"


class IngressProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the publish path's shortcut."""

    # The publish chain of the config's app, made at the first connection (uvicorn loads the app then).
    _publish_chain: ASGIApp | None = None
    _chain_of: object = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if IngressProtocol._chain_of is not self.app:
            IngressProtocol._publish_chain = publish_chain(self.app)
            IngressProtocol._chain_of = self.app
        self._publish = IngressProtocol._publish_chain
        self._whole_app = self.app

    def on_headers_complete(self) -> None:
        """Start the request as uvicorn does, through the publish chain when it is a plain publish."""
        if (
            self._publish is None
            or self.url != _TARGET
            or self.expect_100_continue
            or self.parser.get_method() != _POST
        ):
            super().on_headers_complete()
            return
        earlier = self.cycle
        self.app = self._publish
        try:
            super().on_headers_complete()
        finally:
            self.app = self._whole_app
        if self.cycle is not earlier:
            self.cycle.transport = OneWriteTransport(self.transport)


def publish_chain(outermost: ASGIApp) -> ASGIApp | None:
    """The chain from `outermost` down to the app's router, copied, with the publish route in the router's place.

    The copies share the originals' state. None when the chain is not the one expected: then every request takes
    the normal path.
    """
    links: list[Any] = []
    link: Any = outermost
    while not isinstance(link, Starlette):
        links.append(link)
        link = getattr(link, "app", None)
        if link is None:
            return None
    app = link
    if not _plain_entry(app):
        return None
    if app.middleware_stack is None:
        app.middleware_stack = app.build_middleware_stack()
    router = app.router
    routed = _publish_route(router)
    if routed is None:
        return None
    inner: list[Any] = []
    link = app.middleware_stack
    while not isinstance(link, Router):
        inner.append(link)
        link = getattr(link, "app", None)
        if link is None:
            return None
    chain: ASGIApp = _Routed(router, *routed)
    for layer in reversed(inner):
        chain = _relinked(layer, chain)
    chain = _Entered(app, chain)
    for layer in reversed(links):
        chain = _relinked(layer, chain)
    return chain


def _plain_entry(app: Starlette) -> bool:
    """Whether the app's entry and its router's do no more than `_Entered` and `_Routed`: no root path to set, no
    FastAPI telemetry to wrap requests in (FastAPI 0.165's `_telemetry`), no layers of the router's own."""
    telemetry = getattr(app, "_telemetry", {})
    return (
        not getattr(app, "root_path", "")
        and not any(telemetry.get(kind) for kind in ("tracing", "metrics", "logs"))
        and app.router.middleware_stack == app.router.app
    )


def _publish_route(router: Router) -> tuple[BaseRoute, Scope] | None:
    """The route the router gives a publish and what it adds to the scope, if its path is exactly the publish path.

    The same for every publish (a path without parameters), so it is found once.
    """
    probe: Scope = {"type": "http", "method": "POST", "path": PATH, "root_path": "", "headers": []}
    for route in router.routes:
        match, child_scope = route.matches(probe)
        if match is Match.FULL:
            return (
                (route, child_scope)
                if getattr(route, "path", None) == PATH and not child_scope["path_params"]
                else None
            )
    return None


def _relinked(layer: Any, inner: ASGIApp) -> ASGIApp:
    """A shallow copy of `layer` (sharing its state) calling `inner`."""
    twin = copy.copy(layer)
    twin.app = inner
    chain: ASGIApp = twin
    return chain


class _Entered:
    """What Starlette's entry does for a request: the app in the scope, then its layers."""

    __slots__ = ("_app", "_layers")

    def __init__(self, app: Starlette, layers: ASGIApp) -> None:
        self._app = app
        self._layers = layers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self._app
        await self._layers(scope, receive, send)


class _Routed:
    """What the router does for a publish: itself and the route's match in the scope, then the route."""

    __slots__ = ("_child_scope", "_route", "_router")

    def __init__(self, router: Router, route: BaseRoute, child_scope: Scope) -> None:
        self._router = router
        self._route = route
        self._child_scope = child_scope

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if "router" not in scope:
            scope["router"] = self._router
        scope.update(self._child_scope)
        scope["path_params"] = {}  # a dict of each request's own, as the router's
        await self._route.handle(scope, receive, send)


class OneWriteTransport(asyncio.Transport):
    """A transport that holds a response's first write (its head) until the second (its body), writing both as one.

    Closing first writes what it holds, so a response that fails after its head ends as before.
    """

    __slots__ = ("_held", "_transport", "_writes")

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self._transport = transport
        self._held = b""
        self._writes = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Hold the first write; write it with the second; pass on the rest."""
        self._writes += 1
        if self._writes == 1:
            self._held = bytes(data)
        elif self._writes == 2:
            self._transport.write(self._held + data)
            self._held = b""
        else:
            self._transport.write(data)

    def close(self) -> None:
        """Write what is held, then close."""
        if self._held:
            self._transport.write(self._held)
            self._held = b""
        self._transport.close()

    def is_closing(self) -> bool:
        """Whether the connection is closing."""
        return self._transport.is_closing()
