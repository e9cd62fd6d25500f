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

from starlette.types import ASGIApp, Receive, Scope, Send

from chargewire.api.errors import error_response
from chargewire.api.outage import REQUEST_DEADLINE_S, OutageDeadline
from chargewire.api.rate_limit import Budgets, RateLimits, count_headers, refusal
from chargewire.api.request_guard import RequestGuard
from chargewire.config import Settings
from chargewire.errors import ChargewireError
from chargewire.services.tokens import TokenService


class RequestLayer:
    """ASGI middleware applying the outage deadline, the rate limits and the request guard to every HTTP request."""

    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        tokens: TokenService,
        budgets: Budgets,
        deadline_s: float = REQUEST_DEADLINE_S,
    ) -> None:
        self.app = app
        self._deadline = OutageDeadline(deadline_s)
        self._limits = RateLimits(budgets)
        self._guard = RequestGuard(settings, tokens)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = self._deadline.watch(scope, receive, send)
        try:
            refused: ChargewireError | None = None
            decision = self._limits.decide(scope)
            if decision is not None:
                if decision.allowed:
                    request.added_headers = count_headers(decision)
                else:
                    refused = refusal(decision)
            if refused is None:
                try:
                    receive = await self._guard.checked(scope, receive)
                except ChargewireError as error:
                    refused = error
            if refused is None:
                await self.app(scope, receive, request.send)
            else:
                await error_response(refused)(scope, receive, request.send)
        except asyncio.CancelledError:
            if request.late_answer is None:
                raise
        except Exception as error:
            if not await self._deadline.answers(request, error):
                raise
        finally:
            request.timer.cancel()
        if request.late_answer is not None:
            request.task.uncancel()  # the cancel was the deadline's own, not the server's
            await request.late_answer  # the request is answered before this returns
