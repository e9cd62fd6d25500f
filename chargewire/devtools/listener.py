"""`chargewire listen`: a temporary webhook subscription pointed at a loopback listener, for development.

The listener subscribes through a running chargewire's Notifications API, verifies each delivery with the
subscription's secret and the API token (as a production receiver would, with `chargewire.receiver`),
reports it, optionally forwards it unchanged to the developer's app, and deletes the subscription when it
stops. With forwarding, chargewire gets the app's answer, so retries behave as they will in production.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import httpx
from aiohttp import web

from chargewire.errors import ChargewireError
from chargewire.receiver import InvalidSignature, MalformedEvent, Verifier, event_name

logger = logging.getLogger(__name__)

# Headers that describe one hop, not the message; the forward sets its own.
_HOP_HEADERS = {"host", "content-length", "connection", "keep-alive", "transfer-encoding"}


@dataclass(frozen=True)
class Forwarded:
    """The developer's app's answer to a forwarded delivery (status None: it could not be reached)."""

    status: int | None
    reason: str
    elapsed_ms: float


@dataclass(frozen=True)
class Arrival:
    """One delivery as the listener saw it."""

    event: str
    webhook_id: str
    subscription_id: str
    latency_ms: float | None
    verdict: str
    forwarded: Forwarded | None


@dataclass(frozen=True)
class ListenOptions:
    """Where chargewire runs, which events to take, and where to forward them."""

    api_url: str
    token: str
    events: Sequence[str]
    forward_to: str | None = None
    host: str = "127.0.0.1"
    port: int = 0


class Listener:
    """Listen on loopback, subscribe, report each arrival through `report`, unsubscribe on `aclose`."""

    def __init__(self, options: ListenOptions, report: Callable[[Arrival], None]) -> None:
        self.options = options
        self.subscription_id: str | None = None
        self.url = ""
        self._report = report
        self._verifier: Verifier | None = None
        self._api = httpx.AsyncClient(
            base_url=options.api_url, headers={"Authorization": f"Bearer {options.token}"}, timeout=30
        )
        self._forward = httpx.AsyncClient(timeout=30, follow_redirects=False)
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        """Listen, then subscribe the listener's URL; returns the subscription id."""
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.options.host, self.options.port).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/"
        body = {
            "via": "webhook",
            "notifications": list(self.options.events),
            "webhook": {"callbackUrl": self.url},
            "description": "chargewire listen (temporary)",
        }
        created = await self._api.post("/public-api/notifications/v2.0", json=body)
        if created.status_code != 201:
            await self.aclose()
            raise ListenError(f"chargewire refused the subscription ({created.status_code}): {created.text}")
        data = created.json()["data"]
        self.subscription_id = str(data["id"])
        self._verifier = Verifier(signing_secrets=[data["signingSecret"]], api_token=self.options.token)
        return self.subscription_id

    async def aclose(self) -> None:
        """Delete the subscription (if made), stop listening, close the clients."""
        try:
            if self.subscription_id is not None:
                deleted = await self._api.delete(f"/public-api/notifications/v2.0/{self.subscription_id}")
                if deleted.status_code not in (200, 204, 404):
                    logger.warning("could not delete subscription %s: %s", self.subscription_id, deleted.text)
                self.subscription_id = None
        finally:
            if self._runner is not None:
                await self._runner.cleanup()
            await self._api.aclose()
            await self._forward.aclose()

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = dict(request.headers)
        verdict, name = self._check(body, headers)
        target = self.options.forward_to
        forwarded = await self._forward_unchanged(target, body, headers) if target else None
        self._report(
            Arrival(
                event=name,
                webhook_id=headers.get("webhook-id", "-"),
                subscription_id=headers.get("X-Webhook-Id", "-"),
                latency_ms=_latency_ms(headers.get("X-Timestamp")),
                verdict=verdict,
                forwarded=forwarded,
            )
        )
        if forwarded is not None:
            return web.Response(status=forwarded.status or 502, text=forwarded.reason)
        return web.Response(status=204 if verdict == "verified" else 401)

    def _check(self, body: bytes, headers: dict[str, str]) -> tuple[str, str]:
        if self._verifier is None:
            return "not checked (the subscription's secret is not known yet)", headers.get("X-Webhook-Type", "?")
        try:
            event = self._verifier.verify_event(body, headers)
        except InvalidSignature as refused:
            return f"refused: {refused.reason}", headers.get("X-Webhook-Type", "?")
        except MalformedEvent:
            return "verified, but the body is not an event", "?"
        return "verified", event_name(event)

    async def _forward_unchanged(self, target: str, body: bytes, headers: dict[str, str]) -> Forwarded:
        kept = {name: value for name, value in headers.items() if name.lower() not in _HOP_HEADERS}
        started = time.perf_counter()
        try:
            answer = await self._forward.post(target, content=body, headers=kept)
        except httpx.HTTPError as failure:
            return Forwarded(None, f"not reachable: {failure!r}", _ms_since(started))
        return Forwarded(answer.status_code, answer.reason_phrase, _ms_since(started))


class ListenError(ChargewireError):
    """The listener could not subscribe."""


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _latency_ms(x_timestamp: str | None) -> float | None:
    """From the attempt's start (`X-Timestamp`) to its arrival here."""
    if not x_timestamp:
        return None
    try:
        sent = datetime.fromisoformat(x_timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (time.time() - sent.timestamp()) * 1000
