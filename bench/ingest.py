"""Ingest throughput: events accepted per second through `POST /api/v1/events`.

Runs a real `chargewire serve` process on SQLite and on PostgreSQL and drives it from this process with
concurrent keep-alive connections, once with single events and once with batches of 100.
Usage: python -m bench.ingest [--seconds 10] [--connections 8]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.common import backend_database, bench_server, write_result
from chargewire.catalog import load_event_types

BATCH_SIZE = 100


def _sample_payload() -> dict[str, Any]:
    return load_event_types()["SessionMeterValuesNotification"].example


async def _drive(base_url: str, token: str, body: bytes, per_request: int, seconds: float, connections: int) -> float:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    accepted = 0
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal accepted
        while time.perf_counter() < deadline:
            async with session.post(f"{base_url}/api/v1/events", data=body, headers=headers) as response:
                await response.read()
                if response.status != 202:
                    raise RuntimeError(f"ingest answered {response.status}")
                accepted += per_request

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        elapsed = time.perf_counter() - started
    return accepted / elapsed


def run_backend(backend: str, seconds: float, connections: int) -> dict[str, float]:
    """Single-event and batch rates on one backend."""
    single = orjson.dumps(_sample_payload())
    batch = orjson.dumps([_sample_payload()] * BATCH_SIZE)
    with (
        tempfile.TemporaryDirectory() as workdir,
        backend_database(backend, Path(workdir)) as url,
        bench_server(url, Path(workdir)) as (base_url, token, _pid),
    ):
        asyncio.run(_drive(base_url, token, batch, BATCH_SIZE, 2, connections))  # warm-up
        single_rate = asyncio.run(_drive(base_url, token, single, 1, seconds, connections))
        batch_rate = asyncio.run(_drive(base_url, token, batch, BATCH_SIZE, seconds, connections))
    return {"single_events_per_s": round(single_rate), "batch100_events_per_s": round(batch_rate)}


def main() -> None:
    """Run on both backends and write bench/results/ingest.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    results = {backend: run_backend(backend, args.seconds, args.connections) for backend in ("sqlite", "postgresql")}
    write_result(
        "ingest",
        {"payload_bytes": len(orjson.dumps(_sample_payload())), "connections": args.connections, "results": results},
    )


if __name__ == "__main__":
    main()
