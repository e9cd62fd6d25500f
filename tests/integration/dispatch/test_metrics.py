"""`/metrics` shows deliveries by outcome, latency, attempt duration and queue depth."""

from __future__ import annotations

import asyncio

import httpx

from chargewire.catalog import load_event_types
from chargewire.dispatch.dispatcher import Dispatcher
from chargewire.runtime import Runtime
from tests.conftest import TokenFactory, bearer
from tests.integration.dispatch.conftest import Subscribe
from tests.support.receiver import Receiver, always


def _sample(text: str, name: str, labels: str = "") -> float:
    prefix = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{prefix} not in the metrics")


async def _metrics_once_recorded(api: httpx.AsyncClient, failed: int) -> str:
    """The metrics text once the attempts are written (they are flushed in batches after the send)."""
    for _ in range(200):
        text = (await api.get("/metrics")).text
        if _sample(text, "chargewire_delivery_queue_depth", 'state="failed"') == failed:
            return text
        await asyncio.sleep(0.05)
    raise AssertionError("the failed deliveries were never recorded")


async def test_metrics_count_deliveries_and_show_the_queue(
    runtime: Runtime,
    receiver: Receiver,
    subscribe: Subscribe,
    dispatcher: Dispatcher,
    api: httpx.AsyncClient,
    token_factory: TokenFactory,
) -> None:
    api.headers.update(bearer(await token_factory("metrics:read")))
    await subscribe(receiver.on("/ok", always(202)), "BootNotification")
    await subscribe(receiver.on("/no", always(410)), "BootNotification")
    await runtime.publisher.publish([load_event_types()["BootNotification"].example] * 3)
    await receiver.wait_for(6)
    text = await _metrics_once_recorded(api, failed=3)
    assert _sample(text, "chargewire_delivery_attempts_total", 'outcome="delivered"') == 3
    assert _sample(text, "chargewire_delivery_attempts_total", 'outcome="failed"') == 3
    assert _sample(text, "chargewire_publish_to_delivery_seconds_count") == 3
    assert _sample(text, "chargewire_delivery_queue_depth", 'state="failed"') == 3
    assert _sample(text, "chargewire_delivery_queue_depth", 'state="due"') == 0
