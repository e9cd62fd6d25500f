"""A sample webhook receiver: verifies both signatures of every notification and counts what arrives.

`make demo` runs it so there is a subscriber to watch; it can also answer with errors now and then
(`failure_rate`) so that retries show up in the delivery log.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from aiohttp import web

from chargewire.receiver import InvalidSignature, verify_notification


@dataclass
class ReceiverStats:
    """What the sample receiver has seen."""

    verified: int = 0
    rejected: int = 0
    refused_on_purpose: int = 0
    by_event: dict[str, int] = field(default_factory=dict)


class SampleReceiver:
    """An aiohttp app on loopback that checks signatures and answers 202 (or 503 at `failure_rate`)."""

    def __init__(self, failure_rate: float = 0.0, rng: random.Random | None = None) -> None:
        self.stats = ReceiverStats()
        self.signing_secret: str | None = None
        self.api_token: str | None = None
        self._failure_rate = failure_rate
        self._rng = rng or random.Random()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen and return the URL to subscribe."""
        app = web.Application()
        app.router.add_post("/webhook", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound_port = self._runner.addresses[0][1]
        self.url = f"http://{host}:{bound_port}/webhook"
        return self.url

    async def _receive(self, request: web.Request) -> web.Response:
        if self._rng.random() < self._failure_rate:
            self.stats.refused_on_purpose += 1
            return web.json_response({"message": "try again"}, status=503, headers={"Retry-After": "5"})
        body = await request.read()
        try:
            verify_notification(body, request.headers, signing_secret=self.signing_secret, api_token=self.api_token)
        except InvalidSignature as problem:
            self.stats.rejected += 1
            return web.json_response({"message": str(problem)}, status=401)
        self.stats.verified += 1
        name = request.headers.get("X-Webhook-Type", "?")
        self.stats.by_event[name] = self.stats.by_event.get(name, 0) + 1
        return web.json_response({"received": True}, status=202)

    async def aclose(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
