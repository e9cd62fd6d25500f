"""Database outages as answers: 503 with `Retry-After`, in time, never a hang, a 500 or a dropped connection.

A request that fails because the database is unavailable (`store.outage.is_unavailable`) is answered 503 here,
before Starlette's last-resort handler would answer 500 and re-raise (which made uvicorn close the connection).

The database's own waits are bounded (`store.dialects.engine.DATABASE_WAIT_S`), but on SQLite writers queue in the
process for the one write lock, each waiting up to that long while another process holds it. A request that
has not started its response by the deadline gets the 503 now; its handler is cancelled and left to unwind
in the background (a SQLite statement waiting in its thread cannot be interrupted), and whatever it sends
afterwards is dropped. A response that already started is left to finish.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chargewire.api.errors import error_response
from chargewire.errors import DatabaseUnavailable
from chargewire.store.outage import OutageNotice, is_unavailable

logger = logging.getLogger(__name__)

REQUEST_DEADLINE_S = 4.5


class DatabaseOutageMiddleware:
    """Answers 503 to a request that met a database outage, or has not started its response within `deadline_s`."""

    def __init__(self, app: ASGIApp, deadline_s: float = REQUEST_DEADLINE_S) -> None:
        self.app = app
        self.deadline_s = deadline_s
        self._abandoned: set[asyncio.Future[None]] = set()
        self._outages = OutageNotice("API")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = answered = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the 503 went out instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        handling = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        done, _ = await asyncio.wait([handling], timeout=self.deadline_s)
        if done or started:
            try:
                await handling
            except Exception as error:
                if not is_unavailable(error):
                    raise
                self._outages.met(error)
                if not started:
                    await error_response(DatabaseUnavailable())(scope, receive, send)
            return
        answered = True
        self._abandon(handling)
        logger.warning(
            "%s %s ran past its %.1f s deadline; answered 503", scope["method"], scope["path"], self.deadline_s
        )
        await error_response(DatabaseUnavailable())(scope, receive, send)

    def _abandon(self, task: asyncio.Future[None]) -> None:
        """Cancel `task` without waiting for it; keep it referenced until it ends, and retrieve its outcome."""
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Future[None]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.debug("an abandoned request ended with %r", task.exception())
