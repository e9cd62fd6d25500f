"""The one ASGI layer every request passes before the app: the outage deadline around the rate limits around the
request guard.

Each was a middleware of its own, and each of the three cost a call, an `await` and (two of them) a wrapper
around every message sent (`bench.http_ingress`). Here they keep their order in one pass: the deadline bounds
everything inside it and answers an outage 503 (`outage`); the rate limits count a request before the guard reads
its body or looks up its token, refuse it with 429 (without the counts headers, which the 429 sets itself) or add
their counts to its answer (`rate_limit`); the guard's refusals (413, 401, 422) carry the counts like any answer
(`request_guard`).
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple

from starlette.types import ASGIApp, Receive, Scope, Send

from chargewire.api.errors import error_response
from chargewire.api.outage import REQUEST_DEADLINE_S, OutageDeadline
from chargewire.api.rate_limit import Budgets, RateLimits, count_headers, refusal
from chargewire.api.request_guard import RequestGuard
from chargewire.config import Settings
from chargewire.errors import ChargewireError
from chargewire.services.tokens import TokenService

# The headers an answer gets besides its own.
AddedHeaders = tuple[tuple[bytes, bytes], ...]


class Admission(NamedTuple):
    """What the rate limits and the guard made of a request: the receive to read its body through, the headers its
    answer gets besides its own, and the refusal to answer instead, if any."""

    receive: Receive
    added_headers: AddedHeaders
    refused: ChargewireError | None


class RequestLayer:
    """ASGI middleware applying the outage deadline, the rate limits and the request guard to every HTTP request.

    `api.ingress`'s direct publishes go through the same `deadline` and `admit`.
    """

    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        tokens: TokenService,
        budgets: Budgets,
        deadline_s: float = REQUEST_DEADLINE_S,
    ) -> None:
        self.app = app
        self.deadline = OutageDeadline(deadline_s)
        self.guard = RequestGuard(settings, tokens)
        self._limits = RateLimits(budgets)

    async def admit(self, scope: Scope, receive: Receive) -> Admission:
        """Count the request against its rate limit, then let the guard check it; database errors are raised."""
        decision = self._limits.decide(scope)
        added: AddedHeaders = ()
        if decision is not None:
            if not decision.allowed:
                return Admission(receive, added, refusal(decision))
            added = count_headers(decision)
        try:
            receive = await self.guard.checked(scope, receive)
        except ChargewireError as error:
            return Admission(receive, added, error)
        return Admission(receive, added, None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = self.deadline.watch(scope, receive, send)
        try:
            receive, request.added_headers, refused = await self.admit(scope, receive)
            if refused is None:
                await self.app(scope, receive, request.send)
            else:
                await error_response(refused)(scope, receive, request.send)
        except asyncio.CancelledError:
            if not request.late:
                raise
        except Exception as error:
            answer = self.deadline.outage_answer(request, error)
            if answer is not None:
                await answer(scope, receive, request.raw_send)
        finally:
            request.timer.cancel()
        if request.late_answer is not None:
            request.task.uncancel()  # the cancel was the deadline's own, not the server's
            await request.late_answer  # the request is answered before this returns
