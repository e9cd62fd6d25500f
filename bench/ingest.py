"""Ingest throughput: events accepted per second through `POST /api/v1/events`, and the server's CPU per event.

Runs a real `chargewire serve --no-worker` process on SQLite and on PostgreSQL and drives it from this
process with concurrent keep-alive connections: single events and batches of 100 over 8 connections, then
batches of 1,000 over 2 connections (the publishing side of `bench.kafka`), first with no subscription and
then with one webhook subscription that every event matches, so each event also writes a delivery row (a
Kafka subscription writes none at publish: its stream reads the event log). The
server's CPU time (user + system) over each measure, divided by the events accepted, is its cost per event.
Usage: python -m bench.ingest [--seconds 10] [--connections 8] [--backend sqlite --backend postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
import psutil

from bench.common import backend_database, bench_server, write_result
from chargewire.catalog import load_event_types

BATCH_SIZE = 100
LARGE_BATCH_SIZE = 1000
LARGE_BATCH_CONNECTIONS = 2
EVENT_NAME = "SessionMeterValuesNotification"


@dataclass(frozen=True, slots=True)
class Measure:
    """Events accepted per second, and the server's CPU microseconds per accepted event."""

    events_per_s: float
    server_cpu_us_per_event: float


def _sample_payload() -> dict[str, Any]:
    return load_event_types()[EVENT_NAME].example


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


async def _drive(base_url: str, token: str, body: bytes, per_request: int, seconds: float, connections: int) -> int:
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
        await asyncio.gather(*(worker(session) for _ in range(connections)))
    return accepted


def _measure(
    server: psutil.Process, base_url: str, token: str, batch_size: int, seconds: float, connections: int
) -> Measure:
    body = orjson.dumps(_sample_payload() if batch_size == 1 else [_sample_payload()] * batch_size)
    cpu_before, started = _cpu_s(server), time.perf_counter()
    accepted = asyncio.run(_drive(base_url, token, body, batch_size, seconds, connections))
    elapsed, cpu = time.perf_counter() - started, _cpu_s(server) - cpu_before
    return Measure(accepted / elapsed, cpu / accepted * 1e6)


def _subscribe_to_every_event(base_url: str, token: str) -> None:
    # A receiver nobody listens on: the server runs with no worker, so nothing is ever sent.
    subscription = {
        "via": "webhook",
        "notifications": [EVENT_NAME],
        "webhook": {"callbackUrl": "http://127.0.0.1:9/bench-ingest"},
    }
    created = httpx.post(
        f"{base_url}/public-api/notifications/v2.0", json=subscription, headers={"Authorization": f"Bearer {token}"}
    )
    created.raise_for_status()


def run_backend(backend: str, seconds: float, connections: int) -> dict[str, float]:
    """Single-event, batch and fan-out rates, with the server's CPU per event, on one backend."""
    with (
        tempfile.TemporaryDirectory() as workdir,
        backend_database(backend, Path(workdir)) as url,
        bench_server(url, Path(workdir), "--no-worker") as (base_url, token, pid),
    ):
        server = psutil.Process(pid)
        _measure(server, base_url, token, BATCH_SIZE, 2, connections)  # warm-up
        measures = {
            "single": _measure(server, base_url, token, 1, seconds, connections),
            "batch100": _measure(server, base_url, token, BATCH_SIZE, seconds, connections),
            "batch1000": _measure(server, base_url, token, LARGE_BATCH_SIZE, seconds, LARGE_BATCH_CONNECTIONS),
        }
        _subscribe_to_every_event(base_url, token)
        measures["batch1000_one_subscription"] = _measure(
            server, base_url, token, LARGE_BATCH_SIZE, seconds, LARGE_BATCH_CONNECTIONS
        )
    results: dict[str, float] = {}
    for name, measure in measures.items():
        results[f"{name}_events_per_s"] = round(measure.events_per_s)
        results[f"{name}_server_cpu_us_per_event"] = round(measure.server_cpu_us_per_event, 1)
    return results


def main() -> None:
    """Run on each backend and write bench/results/ingest.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--backend", action="append", choices=("sqlite", "postgresql"))
    args = parser.parse_args()
    backends = args.backend or ["sqlite", "postgresql"]
    results = {backend: run_backend(backend, args.seconds, args.connections) for backend in backends}
    write_result(
        "ingest",
        {
            "payload_bytes": len(orjson.dumps(_sample_payload())),
            "connections": args.connections,
            "large_batch_connections": LARGE_BATCH_CONNECTIONS,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
