"""Publishing for the delivery benchmarks: as fast as possible, or open-loop on a fixed clock; percentiles."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

# The connections an open-loop publisher may hold; past them, sends queue in the client (and count as late).
PACED_CONNECTIONS = 64


def headers(token: str) -> dict[str, str]:
    """The headers of a publishing request."""
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


async def publish_all(base_url: str, token: str, bodies: Iterator[bytes], connections: int) -> None:
    """POST every body to /api/v1/events over `connections` keep-alive connections."""
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def pump() -> None:
            for body in bodies:
                async with session.post(f"{base_url}/api/v1/events", data=body, headers=headers(token)) as response:
                    await response.read()
                    if response.status != 202:
                        raise RuntimeError(f"ingest answered {response.status}")

        await asyncio.gather(*(pump() for _ in range(connections)))


@dataclass
class PacedRun:
    """What an open-loop publisher sent, and when it meant to."""

    published: dict[str, float] = field(default_factory=dict)  # latency tag -> scheduled publish time (monotonic)
    ingest_ms: list[float] = field(default_factory=list)  # scheduled publish -> 202 answer, per POST
    lag_ms: list[float] = field(default_factory=list)  # how late the pacer sent each POST
    rejected: int = 0  # events in POSTs answered other than 202 (left out of `published`)


def latency_tag(sequence: int) -> str:
    """The string an event carries so the receiver can time it: `lat-<sequence>`."""
    return f"lat-{sequence}"


async def publish_paced(
    base_url: str,
    token: str,
    rate: int,
    seconds: float,
    batch: int,
    payload: Callable[[int], dict[str, Any]],
    first: int = 0,
) -> PacedRun:
    """Publish `rate` events/s for `seconds`, `batch` per POST on a fixed clock, never waiting for answers.

    `payload(n)` makes event number n (numbered from `first`); it must carry `latency_tag(n)` as a string value.
    """
    interval = batch / rate
    ticks = round(seconds * rate / batch)
    run = PacedRun()
    connector = aiohttp.TCPConnector(limit=PACED_CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def post(body: bytes, at: float, tags: list[str]) -> None:
            async with session.post(f"{base_url}/api/v1/events", data=body, headers=headers(token)) as response:
                await response.read()
            run.ingest_ms.append((time.monotonic() - at) * 1000)
            if response.status != 202:
                run.rejected += len(tags)
                for tag in tags:
                    del run.published[tag]

        tasks: list[asyncio.Task[None]] = []
        start = time.monotonic() + 0.2
        for tick in range(ticks):
            at = start + tick * interval
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            run.lag_ms.append((time.monotonic() - at) * 1000)
            numbers = range(first + tick * batch, first + (tick + 1) * batch)
            tags = [latency_tag(n) for n in numbers]
            for tag in tags:
                run.published[tag] = at
            body = orjson.dumps(payload(numbers[0]) if batch == 1 else [payload(n) for n in numbers])
            tasks.append(asyncio.create_task(post(body, at, tags)))
        await asyncio.gather(*tasks)
    return run


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p90, p99 and max of `values` (nearest rank, rounded to 0.1); empty for no values."""
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": round(ordered[-1], 1)}


def wait_for(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> bool:
    """Poll `condition` until it holds or `timeout_s` passes; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return condition()
