"""`make demo`: the service on the embedded SQLite default, a sample receiver subscribed to every event, and
simulated charge points publishing through the ingest API, with a live table of deliveries."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import secrets
from dataclasses import dataclass

import aiohttp
import uvicorn

from chargewire.api import create_app
from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.demo.live_view import LatencyWindow, Screen, render
from chargewire.demo.sample_receiver import SampleReceiver
from chargewire.models import ApiToken, Scope
from chargewire.runtime import Runtime
from chargewire.services.subscriptions import OPERATOR
from chargewire.services.tokens import CreatedToken
from chargewire.sources import ChargingNetwork

logger = logging.getLogger(__name__)

DEMO_DESCRIPTION = "chargewire demo receiver"
DEMO_OPERATOR = "demo@chargewire.local"
DEMO_NAME = "demo"
_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


@dataclass(frozen=True)
class DemoOptions:
    """How the demo runs."""

    host: str = "127.0.0.1"
    port: int = 8000
    charge_points: int = 25
    events_per_second: int = 50
    failure_rate: float = 0.05


def demo_settings(settings: Settings) -> Settings:
    """Demo mode (a secret key made once in the data folder) and loopback admitted for the sample receiver."""
    allow = list(settings.delivery_allow_networks)
    if _LOOPBACK not in allow:
        allow.append(_LOOPBACK)
    return settings.model_copy(update={"demo_mode": True, "delivery_allow_networks": allow})


async def _subscribe_receiver(runtime: Runtime, owner: ApiToken, receiver: SampleReceiver) -> str:
    """Replace the demo subscriptions of earlier runs with one for this run's receiver."""
    page = await runtime.subscriptions.list_page(OPERATOR, 100)
    for old in page.items:
        if old.description == DEMO_DESCRIPTION:
            await runtime.subscriptions.delete(OPERATOR, old.id)
    created = await runtime.subscriptions.create(
        owner,
        {
            "via": "webhook",
            "notifications": list(load_event_types()),
            "webhook": {"callbackUrl": receiver.url},
            "description": DEMO_DESCRIPTION,
        },
    )
    receiver.signing_secret = created.signing_secret
    return created.subscription.id


async def _publish_forever(base_url: str, token: str, options: DemoOptions, counter: list[int]) -> None:
    stream = ChargingNetwork(options.charge_points).live_events(utcnow)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(base_url, headers=headers) as session:
        while True:
            batch = list(itertools.islice(stream, options.events_per_second))
            async with session.post("/api/v1/events", json=batch) as response:
                if response.status != 202:
                    logger.error("publish answered %s: %s", response.status, await response.text())
                else:
                    counter[0] += len(batch)
            await asyncio.sleep(1)


async def demo_token(runtime: Runtime) -> CreatedToken:
    """This run's admin token; earlier runs' are revoked, as their text was printed to a terminal."""
    for earlier in await runtime.tokens.list():
        if earlier.name == DEMO_NAME:
            await runtime.tokens.revoke(earlier.id)
    return await runtime.tokens.create(DEMO_NAME, [Scope.ADMIN])


async def _demo_operator(runtime: Runtime) -> str:
    """Give the demo operator a new password for this run (creating the operator the first time)."""
    password = secrets.token_urlsafe(12)
    if any(user.email == DEMO_OPERATOR for user in await runtime.users.list()):
        await runtime.users.set_password(DEMO_OPERATOR, password)
    else:
        await runtime.users.create(DEMO_OPERATOR, password)
    return password


def _banner(options: DemoOptions, token: str, settings: Settings, operator_password: str | None = None) -> str:
    base = f"http://{options.host}:{options.port}"
    back_office = (
        f"  back office  {base}/backoffice\n"
        f"               sign in as {DEMO_OPERATOR} with password {operator_password}   (made for this run)\n"
        if operator_password
        else ""
    )
    return (
        f"\nchargewire demo on {settings.effective_database_url}\n\n"
        f"{back_office}"
        f"  API docs     {base}/docs\n"
        f"  metrics      {base}/metrics\n"
        f"  API token    {token}   (admin; made for this run)\n\n"
        f"  try: curl -H 'Authorization: Bearer {token}' {base}/api/v1/deliveries?per_page=5\n\n"
        f"Publishing {options.events_per_second} events/s from {options.charge_points} simulated charge points to a "
        f"sample receiver that verifies every signature. Ctrl-C stops.\n"
    )


async def run_demo(settings: Settings, options: DemoOptions) -> None:
    """Run until cancelled (Ctrl-C)."""
    settings = demo_settings(settings)
    async with await Runtime.open(settings) as runtime:
        created = await demo_token(runtime)
        operator_password = await _demo_operator(runtime)
        receiver = SampleReceiver(failure_rate=options.failure_rate)
        await receiver.start()
        receiver.api_token = created.text
        await _subscribe_receiver(runtime, created.token, receiver)
        latency = LatencyWindow()
        dispatcher = runtime.dispatcher()
        dispatcher.add_listener(latency.observe)
        app = create_app(runtime)
        server = uvicorn.Server(
            uvicorn.Config(app, host=options.host, port=options.port, log_level="warning", lifespan="off")
        )
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(server.serve()),
            asyncio.create_task(dispatcher.run(stop)),
            asyncio.create_task(runtime.overview.sample_queue(stop)),
        ]
        while not server.started:
            if tasks[0].done():
                raise SystemExit(f"could not listen on {options.host}:{options.port}; is something else there?")
            await asyncio.sleep(0.05)
        print(_banner(options, created.text, settings, operator_password), flush=True)
        published = [0]
        publisher = asyncio.create_task(
            _publish_forever(f"http://{options.host}:{options.port}", created.text, options, published)
        )
        tasks.append(publisher)
        screen = Screen()
        try:
            while not tasks[0].done():
                counts = await runtime.delivery_store.count_by_status(utcnow())
                screen.show(render(published[0], counts, latency, receiver.stats))
                await asyncio.sleep(2)
        finally:
            stop.set()
            server.should_exit = True
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.gather(*tasks, return_exceptions=True)
            await receiver.aclose()
