"""`make demo`: the service on the embedded SQLite default, a sample receiver subscribed to every event, and
two sources of events: simulated OCPP charge points connected through the tap to a dev CSMS, and a simulated
charging network publishing through the ingest API; with a live table of deliveries."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import secrets
from dataclasses import dataclass, field

import aiohttp
import uvicorn

from chargewire.api.ingress import IngressProtocol
from chargewire.catalog import load_event_types
from chargewire.clock import utcnow
from chargewire.config import Settings
from chargewire.demo.live_view import LatencyWindow, Published, Screen, render
from chargewire.demo.ocpp_flow import OcppFlowOptions, demo_fleet, run_ocpp_flow, start_dev_csms, tap_url, with_tap
from chargewire.demo.sample_receiver import SampleReceiver
from chargewire.models import ApiToken, Scope
from chargewire.runtime import Runtime
from chargewire.services.subscriptions import OPERATOR
from chargewire.services.tokens import CreatedToken
from chargewire.sources import ChargingNetwork
from chargewire.web import create_app

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
    ocpp: OcppFlowOptions = field(default_factory=OcppFlowOptions)


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
    tap = (
        f"  OCPP tap     {tap_url(settings)}<identity>, in front of a dev CSMS at {settings.ocpp_upstream}\n"
        f"               charge points: {base}/backoffice/charge-points or `chargewire ocpp charge-points`\n"
        if settings.ocpp_listen
        else ""
    )
    return (
        f"\nchargewire demo on {settings.effective_database_url}\n\n"
        f"{back_office}"
        f"  API docs     {base}/docs\n"
        f"  metrics      {base}/metrics\n"
        f"  API token    {token}   (admin; made for this run)\n"
        f"{tap}\n"
        f"  try: curl -H 'Authorization: Bearer {token}' {base}/api/v1/deliveries?per_page=5\n\n"
        f"{options.ocpp.charge_points} simulated OCPP charge points (1.6 and 2.0.1) talk to the dev CSMS through the "
        f"tap, which publishes the events their traffic shows; {options.events_per_second} events/s from "
        f"{options.charge_points} more simulated charge points are published through the API. A sample receiver "
        f"verifies every signature. Ctrl-C stops.\n"
    )


async def run_demo(settings: Settings, options: DemoOptions) -> None:
    """Run until cancelled (Ctrl-C)."""
    settings = demo_settings(settings)
    async with contextlib.AsyncExitStack() as stack:
        if options.ocpp.charge_points:
            settings = with_tap(settings, await stack.enter_async_context(await start_dev_csms()))
        await _run(await stack.enter_async_context(await Runtime.open(settings)), options)


async def _run(runtime: Runtime, options: DemoOptions) -> None:
    created = await demo_token(runtime)
    operator_password = await _demo_operator(runtime)
    receiver = SampleReceiver(failure_rate=options.failure_rate)
    await receiver.start()
    receiver.api_token = created.text
    await _subscribe_receiver(runtime, created.token, receiver)
    latency = LatencyWindow()
    dispatcher = runtime.dispatcher()
    dispatcher.add_listener(latency.observe)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(runtime),
            host=options.host,
            port=options.port,
            http=IngressProtocol,
            log_level="warning",
            lifespan="off",
        )
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
    print(_banner(options, created.text, runtime.settings, operator_password), flush=True)
    fleet = demo_fleet(runtime.settings, options.ocpp) if runtime.settings.ocpp_listen else None
    if fleet is not None:
        tasks.append(asyncio.create_task(run_ocpp_flow(runtime, fleet, stop)))
    published = [0]
    publisher = asyncio.create_task(
        _publish_forever(f"http://{options.host}:{options.port}", created.text, options, published)
    )
    screen = Screen()
    try:
        while not any(task.done() for task in tasks):
            counts = await runtime.delivery_store.queue_depth(utcnow())
            sources = Published(published[0], _tap_published(runtime) if fleet else None)
            screen.show(render(sources, counts, latency, receiver.stats, fleet.summary() if fleet else None))
            await asyncio.sleep(2)
        _raise_failure(tasks)
    finally:
        stop.set()
        server.should_exit = True
        publisher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.gather(publisher, *tasks, return_exceptions=True)
        await receiver.aclose()


def _tap_published(runtime: Runtime) -> int:
    """Events the tap has published, from its counter in the runtime's metrics."""
    return int(runtime.metrics.registry.get_sample_value("chargewire_ocpp_events_published_total") or 0)


def _raise_failure(tasks: list[asyncio.Task[None]]) -> None:
    """Stop the demo with the error of a part that ended by itself."""
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise SystemExit(f"the demo stopped: {task.exception()!r}")
