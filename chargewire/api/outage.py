"""Database outages as answers: 503 with `Retry-After`, in time, never a hang, a 500 or a dropped connection.

A request that fails because the database is unavailable (`store.outage.is_unavailable`) is answered 503 here,
before Starlette's last-resort handler would answer 500 and re-raise (which made uvicorn close the connection).

The database's own waits are bounded (`store.dialects.engine.DATABASE_WAIT_S`), but on SQLite writers queue in the
process for the one write lock, each waiting up to that long while another process holds it. A request that
has not started its response by the deadline gets the 503 now, sent beside its handler, which is cancelled and
unwinds meanwhile (a SQLite statement waiting in its thread cannot be interrupted); whatever the handler sends
afterwards is dropped. A response that already started is left to finish.

The handler runs in the request's own task, with a timer for the deadline: a task of its own and a wait for it
per request cost about 40 us CPU each, a fifth of the ingress path (`bench.http_ingress`). `RequestLayer` applies
this with the rate limits and the request guard in one ASGI layer, and to `api.ingress`'s direct publishes.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from chargewire.api.errors import error_response
from chargewire.errors import DatabaseUnavailable
from chargewire.store.outage import OutageNotice, is_unavailable

logger = logging.getLogger(__name__)

REQUEST_DEADLINE_S = 4.5


class OutageDeadline:
    """Answers 503 to a request that met a database outage, or has not started its response within `deadline_s`.

    Every request runs under it: `arm` (or `watch`, for an ASGI request) when it begins, `outage_answer` for what
    it raised; when the handler returns, the caller cancels the request's timer and, on the ASGI path, awaits the
    `late_answer`, if one was sent. `api.ingress`'s direct publishes are `Deadlined` requests of their own.
    """

    def __init__(self, deadline_s: float = REQUEST_DEADLINE_S) -> None:
        self.deadline_s = deadline_s
        self._answering: set[asyncio.Task[None]] = set()
        self._outages = OutageNotice("API")

    def watch(self, scope: Scope, receive: Receive, send: Send) -> WatchedRequest:
        """Start an ASGI request's deadline; its handler sends through the returned request's `send`."""
        request = WatchedRequest(scope, receive, send)
        self.arm(request)
        return request

    def arm(self, request: Deadlined) -> None:
        """Start `request`'s deadline."""
        request.timer = asyncio.get_running_loop().call_later(self.deadline_s, self._past_deadline, request)

    def outage_answer(self, request: Deadlined, error: Exception) -> JSONResponse | None:
        """What a request that raised `error` is answered: 503 for an outage, unless its response started or it
        was answered at its deadline already (then None: nothing more is sent). Any other error is raised again."""
        if request.late:
            logger.debug("a request answered 503 at its deadline ended with %r", error)
            return None
        if not is_unavailable(error):
            raise error
        self._outages.met(error)
        return None if request.started else error_response(DatabaseUnavailable())

    def _past_deadline(self, request: Deadlined) -> None:
        """Answer 503 now beside the handler, and cancel the handler, unless its response has started."""
        if request.started:
            return
        scope = request.scope
        logger.warning(
            "%s %s ran past its %.1f s deadline; answered 503", scope["method"], scope["path"], self.deadline_s
        )
        request.late = True
        sending = request.answer_late(error_response(DatabaseUnavailable()))
        if sending is not None:
            self._answering.add(sending)  # referenced until sent, as the loop holds tasks weakly
            sending.add_done_callback(self._answering.discard)
        request.task.cancel()


class Deadlined:
    """A request under a deadline: its scope, its task, whether its response started, whether it was answered at
    its deadline, and how that answer is sent."""

    __slots__ = ("late", "scope", "started", "task", "timer")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.task = _current_task()
        self.started = False
        self.late = False
        self.timer: asyncio.TimerHandle

    def answer_late(self, answer: JSONResponse) -> asyncio.Task[None] | None:
        """Send `answer` in the handler's place; the task sending it, if it is sent in one."""
        raise NotImplementedError


class WatchedRequest(Deadlined):
    """An ASGI request under a deadline: the 503 sent in its place if one was, and headers its response gets
    besides its own (the rate limits' counts)."""

    __slots__ = ("added_headers", "late_answer", "raw_send", "receive")

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        super().__init__(scope)
        self.receive = receive
        self.raw_send = send
        self.late_answer: asyncio.Task[None] | None = None
        self.added_headers: tuple[tuple[bytes, bytes], ...] = ()

    def answer_late(self, answer: JSONResponse) -> asyncio.Task[None]:
        """Send `answer` in a task of its own, beside the handler."""
        self.late_answer = asyncio.get_running_loop().create_task(answer(self.scope, self.receive, self.raw_send))
        return self.late_answer

    async def send(self, message: Message) -> None:
        """Pass the handler's message on, with the added headers, unless a 503 went out in its place."""
        if self.late:
            return
        if message["type"] == "http.response.start":
            self.started = True
            if self.added_headers:
                # Appended, not set: no handler answers with these headers (the rate limits' 429 sets them itself).
                message["headers"] = [*message.get("headers", ()), *self.added_headers]
        await self.raw_send(message)


def _current_task() -> asyncio.Task[object]:
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("a request runs in a task")
    return task
