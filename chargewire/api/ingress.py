"""A direct way in for `POST /api/v1/events`: uvicorn's httptools protocol, answering plain publishes itself.

Nearly every request is a publish. uvicorn hands each to the app in a request cycle of its own (a scope, `receive`
and `send` coroutines, ASGI messages), through Starlette's entry, its error layers, the request layer and FastAPI's
exit stack, to the route. Here a plain publish (POST to exactly the publish path, HTTP/1.1, a declared body within
the limit) starts, as uvicorn starts a request, one coroutine (`DirectPublish.answer`) running the same code as
that chain: the request layer's deadline and admission (`RequestLayer.admit`: rate limits, guard, bearer token),
then the route's (`routes.events.publish_read`: the token's scope, the body the protocol collects, the write), and
the same error answers (`api.errors`). The answer goes out in one write, framed as uvicorn frames it.

Anything else takes uvicorn's own path: other requests, `Expect: 100-continue`, a chunked body or one declared
over the limit (413 before reading), a publish behind another request still under way on its connection
(pipelining), proxy headers (`X-Forwarded-*`), an access log, a concurrency limit, a root path. Keep-alive and its
timeout, pipelined requests behind a direct one, a client gone mid-body and shutdown (a publish under way is
answered, with `connection: close`) run through uvicorn's protocol methods as before. An unexpected error is
answered as on uvicorn's path and logged once (uvicorn's path logs it again as "Exception in ASGI application").

Coupled to uvicorn 0.54.0's `HttpToolsProtocol` (the cycle's `response_complete`, `disconnected`, `keep_alive` and
`message_event` as its protocol reads them; `on_response_complete`; `STATUS_LINE`) and to the app's chain as
`web.create_app` builds it: tests/unit/api/test_ingress_coupling.py fails if these change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from starlette.applications import Starlette
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Match, Router
from starlette.types import Message, Scope
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

from chargewire.api.errors import error_response, unexpected_error_response
from chargewire.api.outage import Deadlined
from chargewire.api.request_layer import AddedHeaders, RequestLayer
from chargewire.api.routes.events import PATH, publish_events, publish_read
from chargewire.errors import ChargewireError
from chargewire.runtime import Runtime

_TARGET = PATH.encode("ascii")
_POST = b"POST"
Headers = Sequence[tuple[bytes, bytes]]
# What uvicorn answers when a request's task ends without an answer (cancelled at the end of a graceful shutdown).
_PLAIN_500: tuple[int, Headers, bytes] = (
    500,
    ((b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21")),
    b"Internal Server Error",
)


class IngressProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol answering plain publishes directly."""

    # The direct path of the config's app, found at the first connection (uvicorn loads the app then).
    _direct_of: object = None
    _found: DirectPublish | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if IngressProtocol._direct_of is not self.app:
            IngressProtocol._found = direct_publish(self.app)
            IngressProtocol._direct_of = self.app
        plain = not (self.access_log or self.limit_concurrency or self.root_path or self.config.reset_contextvars)
        self._direct = IngressProtocol._found if plain else None

    def on_headers_complete(self) -> None:
        """Start a plain publish on the direct path, as uvicorn starts a request; anything else as uvicorn does."""
        direct = self._direct
        if (
            direct is None
            or self.url != _TARGET
            or self.expect_100_continue
            or (self.cycle is not None and not self.cycle.response_complete)
            or self.parser.get_method() != _POST
            or self.parser.get_http_version() != "1.1"
            or self.parser.should_upgrade()
            or not direct.takes(self.headers)
        ):
            super().on_headers_complete()
            return
        scope = cast(Scope, self.scope)
        scope["method"] = "POST"
        scope["path"] = PATH
        scope["raw_path"] = _TARGET
        scope["query_string"] = b""
        cycle = DirectCycle(scope, self.parser.should_keep_alive(), self.loop.create_future())
        # In the cycle's place: the protocol's own methods read and set the same four attributes.
        self.cycle = cast(RequestResponseCycle, cycle)
        task = self.loop.create_task(self._answer(cycle))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def on_body(self, body: bytes) -> None:
        """Collect a direct publish's body (within the limit, as its declared size is); else as uvicorn does."""
        cycle: object = self.cycle
        if isinstance(cycle, DirectCycle):
            cycle.body += body
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        """Hand a direct publish its whole body; else as uvicorn does."""
        cycle: object = self.cycle
        if isinstance(cycle, DirectCycle):
            cycle.message_event.set()
        else:
            super().on_message_complete()

    async def _answer(self, cycle: DirectCycle) -> None:
        assert self._direct is not None
        try:
            answer = await self._direct.answer(cycle.scope, cycle.read, lambda late: self._write(cycle, *late))
        except asyncio.CancelledError as error:
            # The server's cancel at the end of its graceful shutdown: answered and logged as uvicorn does.
            self.logger.error("Exception in ASGI application\n", exc_info=error)
            cycle.keep_alive = False
            self._write(cycle, *_PLAIN_500)
            return
        except Exception as error:
            # As Starlette's last-resort layer answers it (a client gone mid-body too); uvicorn then closes the
            # connection.
            self._write(cycle, *_framed(unexpected_error_response("POST", PATH, error)))
            self.transport.close()
            return
        if answer is None:
            return
        response, added = answer
        if self.flow.write_paused and not cycle.disconnected:
            await self.flow.drain()
        self._write(cycle, *_framed(response), added)

    def _write(self, cycle: DirectCycle, status: int, headers: Headers, body: bytes, added: AddedHeaders = ()) -> None:
        """Write an answer as uvicorn frames it (its default headers first, `connection: close` when the connection
        ends with it), in one write; then end the request as uvicorn's cycle does."""
        if cycle.disconnected or cycle.response_complete:
            return
        head = [STATUS_LINE[status]]
        for name, value in (*self.server_state.default_headers, *headers, *added):
            head += (name, b": ", value, b"\r\n")
        if not cycle.keep_alive:
            head.append(b"connection: close\r\n")
        head += (b"\r\n", body)
        self.transport.write(b"".join(head))
        cycle.response_complete = True
        if not cycle.keep_alive:
            self.transport.close()
        self.on_response_complete()


class _BodyComplete:
    """The cycle's message event: set when the body is complete, or when the connection is lost."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.future = future

    def set(self) -> None:
        """Wake the publish waiting for its body."""
        if not self.future.done():
            self.future.set_result(None)


class DirectCycle:
    """A direct publish's request as the protocol sees it: its scope, its body as collected, and its state."""

    __slots__ = ("body", "disconnected", "keep_alive", "message_event", "response_complete", "scope")

    def __init__(self, scope: Scope, keep_alive: bool, body_complete: asyncio.Future[None]) -> None:
        self.scope = scope
        self.body = bytearray()
        self.keep_alive = keep_alive
        self.disconnected = False
        self.response_complete = False
        self.message_event = _BodyComplete(body_complete)

    async def read(self) -> bytes:
        """The whole body once it is in; ClientDisconnect, as the route's reader raises it, if the client left."""
        await self.message_event.future
        if self.disconnected:
            raise ClientDisconnect
        return bytes(self.body)


class _DirectRequest(Deadlined):
    """A direct publish under the request layer's deadline, whose late 503 the protocol writes at once."""

    __slots__ = ("_write",)

    def __init__(self, scope: Scope, write: Callable[[tuple[int, Headers, bytes]], None]) -> None:
        super().__init__(scope)
        self._write = write

    def answer_late(self, answer: Response) -> None:
        """Write `answer` now."""
        self._write(_framed(answer))


class DirectPublish:
    """The direct path's one coroutine, and which publishes it takes."""

    def __init__(self, layer: RequestLayer, runtime: Runtime) -> None:
        self._layer = layer
        self._runtime = runtime

    def takes(self, headers: list[tuple[bytes, bytes]]) -> bool:
        """Whether a publish with these headers goes the direct way: a declared size within the limit, not chunked,
        and no proxy headers (uvicorn's proxy layer would change its client address, the rate limits' key)."""
        for name, _ in headers:
            if name == b"transfer-encoding" or name.startswith(b"x-forwarded-"):
                return False
        return self._layer.guard.publish_fits(headers)

    async def answer(
        self,
        scope: Scope,
        read: Callable[[], Awaitable[bytes]],
        write_late: Callable[[tuple[int, Headers, bytes]], None],
    ) -> tuple[Response, AddedHeaders] | None:
        """The answer to a publish and the headers it gets besides its own, as the app's chain would give it; None
        when it was answered at its deadline (through `write_late`). Raises what the chain would not answer."""
        layer = self._layer
        request = _DirectRequest(scope, write_late)
        layer.deadline.arm(request)
        try:
            _, added, refused = await layer.admit(scope, _unread)
            if refused is not None:
                return error_response(refused), added
            try:
                return await publish_read(self._runtime, scope, read), added
            except ChargewireError as error:
                return error_response(error), added  # as the app's exception layer answers it
        except asyncio.CancelledError:
            if not request.late:
                raise
            return None
        except Exception as error:
            answer = layer.deadline.outage_answer(request, error)
            return None if answer is None else (answer, ())
        finally:
            request.timer.cancel()


async def _unread() -> Message:
    raise RuntimeError("a direct publish's body is collected by the protocol, not received")


def _framed(response: Response) -> tuple[int, Headers, bytes]:
    return response.status_code, response.raw_headers, bytes(response.body)


def direct_publish(outermost: Any) -> DirectPublish | None:
    """The direct path for the app `outermost` leads to, or None when its chain is not the one `web.create_app`
    builds (then every request takes uvicorn's path)."""
    link = outermost
    while isinstance(link, ProxyHeadersMiddleware):
        link = link.app
    if not isinstance(link, Starlette) or not _plain_entry(link):
        return None
    app = link
    if app.middleware_stack is None:
        app.middleware_stack = app.build_middleware_stack()
    layers: list[Any] = []
    link = app.middleware_stack
    while not isinstance(link, Router):
        layers.append(link)
        link = getattr(link, "app", None)
        if link is None:
            return None
    expected = [ServerErrorMiddleware, RequestLayer, ExceptionMiddleware, AsyncExitStackMiddleware]
    if [type(layer) for layer in layers] != expected or not _publishes_first(link):
        return None
    runtime = getattr(app.state, "runtime", None)
    return DirectPublish(layers[1], runtime) if isinstance(runtime, Runtime) else None


def _plain_entry(app: Starlette) -> bool:
    """Whether the app's entry and its router's do nothing a publish needs: no root path, no FastAPI telemetry to
    wrap requests in (FastAPI 0.165's `_telemetry`), no layers of the router's own."""
    telemetry = getattr(app, "_telemetry", {})
    return (
        not getattr(app, "root_path", "")
        and not any(telemetry.get(kind) for kind in ("tracing", "metrics", "logs"))
        and app.router.middleware_stack == app.router.app
    )


def _publishes_first(router: Router) -> bool:
    """Whether the router gives a publish to the publish route."""
    probe: Scope = {"type": "http", "method": "POST", "path": PATH, "root_path": "", "headers": []}
    for route in router.routes:
        match, _ = route.matches(probe)
        if match is Match.FULL:
            return getattr(route, "endpoint", None) is publish_events
    return False
