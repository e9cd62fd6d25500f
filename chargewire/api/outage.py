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
this with the rate limits and the request guard in one ASGI layer.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import Message, Receive, Scope, Send

from chargewire.api.errors import error_response
from chargewire.errors import DatabaseUnavailable
from chargewire.store.outage import OutageNotice, is_unavailable

logger = logging.getLogger(__name__)

REQUEST_DEADLINE_S = 4.5


class OutageDeadline:
    """Answers 503 to a request that met a database outage, or has not started its response within `deadline_s`.

    `RequestLayer` runs every request through it: `watch` when it begins, `answers` for what it raised; when the
    handler returns, the layer cancels the request's timer and awaits the `late_answer`, if one was sent.
    """

    def __init__(self, deadline_s: float = REQUEST_DEADLINE_S) -> None:
        self.deadline_s = deadline_s
        self._answering: set[asyncio.Task[None]] = set()
        self._outages = OutageNotice("API")

    def watch(self, scope: Scope, receive: Receive, send: Send) -> WatchedRequest:
        """Start a request's deadline; its handler sends through the returned request's `send`."""
        request = WatchedRequest(scope, receive, send)
        request.timer = asyncio.get_running_loop().call_later(self.deadline_s, self._past_deadline, request)
        return request

    async def answers(self, request: WatchedRequest, error: Exception) -> bool:
        """Whether `error` ends here: answered 503 for an outage (unless the response started), or the end of a
        handler answered at its deadline already. False for any other error, which the caller raises again."""
        if request.late_answer is not None:
            logger.debug("a request answered 503 at its deadline ended with %r", error)
            return True
        if not is_unavailable(error):
            return False
        self._outages.met(error)
        if not request.started:
            await error_response(DatabaseUnavailable())(request.scope, request.receive, request.raw_send)
        return True

    def _past_deadline(self, request: WatchedRequest) -> None:
        """Answer 503 now beside the handler, and cancel the handler, unless its response has started."""
        if request.started:
            return
        scope = request.scope
        logger.warning(
            "%s %s ran past its %.1f s deadline; answered 503", scope["method"], scope["path"], self.deadline_s
        )
        answer = error_response(DatabaseUnavailable())(scope, request.receive, request.raw_send)
        request.late_answer = asyncio.get_running_loop().create_task(answer)
        self._answering.add(request.late_answer)  # referenced until sent, as the loop holds tasks weakly
        request.late_answer.add_done_callback(self._answering.discard)
        request.task.cancel()


class WatchedRequest:
    """One request under a deadline: whether its response started, the 503 sent in its place if one was, and
    headers its response gets besides its own (the rate limits' counts)."""

    __slots__ = ("added_headers", "late_answer", "raw_send", "receive", "scope", "started", "task", "timer")

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self.receive = receive
        self.raw_send = send
        self.task = _current_task()
        self.started = False
        self.late_answer: asyncio.Task[None] | None = None
        self.added_headers: tuple[tuple[bytes, bytes], ...] = ()
        self.timer: asyncio.TimerHandle

    async def send(self, message: Message) -> None:
        """Pass the handler's message on, with the added headers, unless a 503 went out in its place."""
        if self.late_answer is not None:
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
        raise RuntimeError("an ASGI request runs in a task")
    return task
