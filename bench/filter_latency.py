"""Publish latency beside a large filter: p50/p99 of `POST /api/v1/events` with one subscription whose filter
is a 10,000-value `$in`, next to the same with no subscription at all.

Runs a real `chargewire serve --no-worker` on SQLite and on PostgreSQL. Each measure sends single events and
batches of 20 from 4 keep-alive connections for a fixed time and records every request's latency; the
filtered subscription matches no event, so each publish pays only for reading and evaluating its filter.
`--server-source DIR` runs the server from another checkout (e.g. a commit before filters were compiled), for
a before/after figure on the same machine.
Usage: python -m bench.filter_latency [--seconds 10] [--backend sqlite] [--server-source DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson

from bench.common import backend_database, bench_server, write_result
from chargewire.catalog import load_event_types

EVENT_NAME = "HardwareStatusNotification"
FILTER_VALUES = 10_000
CONNECTIONS = 4
BATCH_SIZE = 20


def _payload() -> dict[str, Any]:
    # A charge point id outside the filter's list: the subscription's filter is evaluated and never matches.
    return {**load_event_types()[EVENT_NAME].example, "chargePointId": FILTER_VALUES * 10}


async def _latencies_ms(base_url: str, token: str, body: bytes, seconds: float) -> list[float]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            async with session.post(f"{base_url}/api/v1/events", data=body, headers=headers) as response:
                await response.read()
                if response.status != 202:
                    raise RuntimeError(f"ingest answered {response.status}")
            latencies.append((time.perf_counter() - started) * 1000)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONNECTIONS)) as session:
        await asyncio.gather(*(worker(session) for _ in range(CONNECTIONS)))
    return latencies


def _summary(latencies: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(latencies, n=100)
    return {"requests": len(latencies), "p50_ms": round(cuts[49], 2), "p99_ms": round(cuts[98], 2)}


def _measure(base_url: str, token: str, seconds: float) -> dict[str, dict[str, float]]:
    single, batch = orjson.dumps(_payload()), orjson.dumps([_payload()] * BATCH_SIZE)
    return {
        "single": _summary(asyncio.run(_latencies_ms(base_url, token, single, seconds))),
        f"batch{BATCH_SIZE}": _summary(asyncio.run(_latencies_ms(base_url, token, batch, seconds))),
    }


def _subscribe_with_large_filter(base_url: str, token: str) -> None:
    subscription = {
        "via": "webhook",
        "notifications": [EVENT_NAME],
        "webhook": {"callbackUrl": "http://127.0.0.1:9/bench-filter"},
        "filter": {"chargePointId": {"$in": list(range(FILTER_VALUES))}},
    }
    created = httpx.post(
        f"{base_url}/public-api/notifications/v2.0", json=subscription, headers={"Authorization": f"Bearer {token}"}
    )
    created.raise_for_status()


def run_backend(backend: str, seconds: float, server_source: str | None) -> dict[str, Any]:
    """Latencies with no subscription, then beside one 10,000-value `$in` filter, on one backend."""
    overrides = {"PYTHONPATH": server_source} if server_source else {}
    with (
        tempfile.TemporaryDirectory() as workdir,
        backend_database(backend, Path(workdir)) as url,
        bench_server(url, Path(workdir), "--no-worker", env_overrides=overrides) as (base_url, token, _pid),
    ):
        _measure(base_url, token, 2)  # warm-up
        no_subscription = _measure(base_url, token, seconds)
        _subscribe_with_large_filter(base_url, token)
        return {"no_subscription": no_subscription, "one_10000_value_in_filter": _measure(base_url, token, seconds)}


def main() -> None:
    """Run on each backend and write bench/results/filter_latency.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--backend", action="append", choices=("sqlite", "postgresql"))
    parser.add_argument("--server-source", help="run the server from this checkout instead")
    args = parser.parse_args()
    backends = args.backend or ["sqlite", "postgresql"]
    results = {backend: run_backend(backend, args.seconds, args.server_source) for backend in backends}
    name = "filter_latency" if not args.server_source else "filter_latency_before"
    write_result(
        name,
        {"connections": CONNECTIONS, "filter_values": FILTER_VALUES, "results": results},
        module="filter_latency",
    )


if __name__ == "__main__":
    main()
