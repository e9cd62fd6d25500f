"""Webhook delivery: sustained deliveries/s, publish-to-receipt latency, peak RSS with a million pending.

Everything runs as real processes on this machine: `chargewire serve` (bench.common.bench_server),
`chargewire worker` processes, a lean HTTP receiver in its own process (`bench.receiver`: a raw asyncio
protocol on uvloop answering 202 to every POST, counting requests and webhook-ids), and `wrk`. On SQLite and
on PostgreSQL:

1. sustained: N events of 1 KB (`chargePoint.dataTransferReceived`, padded `data`) are stored while no worker
   runs (API with --no-worker); then 1 or 4 `chargewire worker` processes start. The rate is counted at the
   receiver from its first to its last request; duplicates are requests whose webhook-id came before.
2. latency: events are published at a fixed offered rate, in small batches paced by a clock; each carries
   `messageId` "lat-<n>". Latency is the receiver's arrival time minus the scheduled publish time (one
   machine, one monotonic clock), so a publisher that falls behind shows up in the figure, not hidden.
   Configurations: `serve` (API and worker in one process, woken by the local publish), and the API with
   --no-worker beside 1 or 4 worker processes (they find work by polling).
3. memory: 1,000,000 pending deliveries made by batch ingest (1,000 events per request); then one worker
   delivers for 30 s while psutil samples the RSS (children included) of the worker and the API process.
4. reference: `wrk -t2 -c64 -d10s -s bench/wrk-post.lua` (1 KB POST) against the same receiver.

The machine has 2 cores: server, workers, database, receiver and this load generator all share them.
Usage: python -m bench.webhook [--quick] [--backends sqlite,postgresql] [--phases sustained,latency,memory,wrk]
       [--latency-modes serve,1,4] [--no-save]
For example the `serve` latency alone on SQLite, without touching bench/results/webhook.json:
    python -m bench.webhook --backends sqlite --phases latency --latency-modes serve --no-save
Where PostgreSQL's time goes: with CHARGEWIRE_BENCH_PG_STATEMENTS=FILE the cluster loads pg_stat_statements and
writes every statement's calls and totals to FILE, per database (one per phase and case); add
CHARGEWIRE_BENCH_PG_EXPLAIN_MS=N for auto_explain's plans of statements that ran N ms or more
(`chargewire.devtools.postgres`).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

from bench.common import bench_server, cpu_seconds, cpu_share, machine_busy_seconds, write_result
from bench.paced import latency_tag, percentiles, publish_all, publish_paced, wait_for
from bench.processes import Backend, RssSampler, open_backend, running_workers
from bench.receiver import Receiver, running_receiver

WRK_SCRIPT = Path(__file__).with_name("wrk-post.lua")
EVENT_NAME = "chargePoint.dataTransferReceived"
PAYLOAD_BYTES = 1024
PRELOAD_BATCH = 500
MEMORY_BATCH = 1000
LATENCY_BATCH = 5  # events per POST: 500 events/s is 100 POSTs/s
TARGETS = {"deliveries_per_s": 3000, "p99_ms_at_500_per_s": 50, "peak_rss_mb_1m_pending": 300}


@dataclass(frozen=True)
class Sizes:
    """How much work each phase does (--quick shrinks everything for a smoke check)."""

    sustained_events: int
    latency_rate: int
    latency_s: float
    memory_pending: int
    memory_deliver_s: float
    wrk_s: int


FULL = Sizes(30_000, 500, 20, 1_000_000, 30, 10)
QUICK = Sizes(3_000, 500, 5, 20_000, 5, 3)

# --------------------------------------------------------------------------------------------------------
# Load: subscriptions and events.


def _padding() -> str:
    probe = orjson.dumps(_payload(0, "lat", ""))
    return "x" * (PAYLOAD_BYTES - len(probe) - 4)  # "-<n>" of a typical sequence number


def _payload(sequence: int, tag: str, padding: str) -> dict[str, Any]:
    return {
        "notification": EVENT_NAME,
        "chargePointId": sequence,
        "vendorId": "bench",
        "messageId": f"{tag}-{sequence}",
        "data": padding,
    }


PADDING = _padding()


def _latency_payload(sequence: int) -> dict[str, Any]:
    return {**_payload(sequence, "lat", PADDING), "messageId": latency_tag(sequence)}


def subscribe(base_url: str, token: str, callback_url: str) -> None:
    response = httpx.post(
        f"{base_url}/public-api/notifications/v2.0",
        headers={"Authorization": f"Bearer {token}"},
        json={"via": "webhook", "notifications": [EVENT_NAME], "webhook": {"callbackUrl": callback_url}},
        timeout=30,
    )
    if response.status_code != 201:
        raise RuntimeError(f"subscribing answered {response.status_code}: {response.text}")


def batches(events: int, size: int, tag: str) -> Iterator[bytes]:
    """Bodies of `size` events each, numbered from 0, until `events` are made."""
    for start in range(0, events, size):
        yield orjson.dumps([_payload(n, tag, PADDING) for n in range(start, min(events, start + size))])


# --------------------------------------------------------------------------------------------------------
# The phases.


@dataclass(frozen=True)
class SustainedCase:
    """One sustained-rate configuration: how many worker processes, and worker settings beyond the defaults."""

    label: str
    workers: int
    settings: tuple[tuple[str, str], ...] = ()


SUSTAINED_CASES = (
    SustainedCase("1_worker", 1),
    SustainedCase("4_workers", 4),
    # Diagnostic: the same with the per-subscription in-flight limit (default 16) out of the way.
    SustainedCase("1_worker_per_sub_256", 1, (("CHARGEWIRE_WORKER_MAX_IN_FLIGHT_PER_SUBSCRIPTION", "256"),)),
    SustainedCase("4_workers_per_sub_256", 4, (("CHARGEWIRE_WORKER_MAX_IN_FLIGHT_PER_SUBSCRIPTION", "256"),)),
)


def _workers_ready(workdir: Path, count: int) -> bool:
    """Every worker has logged that it is delivering."""
    logs = [workdir / f"worker-{number}.log" for number in range(count)]
    return all(log.exists() and " delivering" in log.read_text() for log in logs)


def measure_sustained(backend: Backend, receiver: Receiver, case: SustainedCase, events: int) -> dict[str, Any]:
    """Preload `events` with no worker running, then drain them with the case's worker processes.

    The headline rate is counted from the moment every worker is up (Python start-up of 4 processes takes
    seconds on 2 busy cores) to the last request; first-to-last is given too.
    """
    url, workdir = backend.fresh(f"sustained-{case.label}")
    with bench_server(url, workdir, "--no-worker") as (base_url, token, api_pid):
        subscribe(base_url, token, receiver.url())
        started = time.monotonic()
        asyncio.run(publish_all(base_url, token, batches(events, PRELOAD_BATCH, "s"), connections=2))
        preload_s = time.monotonic() - started
        receiver.reset()
        load = os.getloadavg()[0]
        spawned = time.monotonic()
        with running_workers(case.workers, url, workdir, dict(case.settings)) as processes:
            if not wait_for(lambda: _workers_ready(workdir, case.workers), 60):
                raise RuntimeError(f"the workers did not start within 60 s; see {workdir}/worker-*.log")
            groups = {
                "workers": [p.pid for p in processes],
                "api": [api_pid],
                "receiver": [receiver.process.pid],
                "database": backend.database_pids(),
            }
            cpu_before, busy_before = cpu_seconds(groups), machine_busy_seconds()
            ready_at, ready_count = time.monotonic(), receiver.stats()["unique"]
            complete = wait_for(lambda: receiver.stats()["unique"] >= events, max(180, events / 50), 0.1)
            cpu_after, busy_after = cpu_seconds(groups), machine_busy_seconds()
            cpu_window = time.monotonic() - ready_at
        stats = receiver.stats()  # after the workers stopped: late duplicates are counted too
    window = stats["last"] - stats["first"]
    steady_window = stats["last"] - ready_at
    steady = stats["unique"] - ready_count
    cores = cpu_share(cpu_before, cpu_after, cpu_window)
    cores["whole_machine"] = round((busy_after - busy_before) / cpu_window, 2)
    return {
        "workers": case.workers,
        "settings": dict(case.settings),
        "events": events,
        "complete": complete,
        "delivered_unique": stats["unique"],
        "requests": stats["requests"],
        "duplicates": stats["requests"] - stats["unique"],
        "deliveries_per_s": round(steady / steady_window) if steady_window > 0 and steady > events / 2 else None,
        "steady_deliveries": steady,
        "first_to_last_per_s": round((stats["unique"] - 1) / window) if window > 0 else 0,
        "first_to_last_s": round(window, 2),
        "spawn_to_first_delivery_s": round(stats["first"] - spawned, 2),
        "spawn_to_all_workers_up_s": round(ready_at - spawned, 2),
        "preload_events_per_s": round(events / preload_s),
        "cores_used": cores,
        "load_average_before": round(load, 2),
    }


def measure_latency(backend: Backend, receiver: Receiver, mode: str, sizes: Sizes) -> dict[str, Any]:
    """Publish at a fixed rate and time each event from its scheduled publish to its arrival.

    `mode` "serve": API and worker in one process; "1" or "4": the API with --no-worker and that many workers.
    """
    url, workdir = backend.fresh(f"latency-{mode}")
    serve_args = () if mode == "serve" else ("--no-worker",)
    workers = 0 if mode == "serve" else int(mode)
    with (
        bench_server(url, workdir, *serve_args) as (base_url, token, api_pid),
        running_workers(workers, url, workdir) as processes,
    ):
        subscribe(base_url, token, receiver.url())
        receiver.reset()
        warmup = 100
        asyncio.run(publish_all(base_url, token, batches(warmup, LATENCY_BATCH, "warm"), connections=1))
        if not wait_for(lambda: receiver.stats()["requests"] >= warmup, 60):
            raise RuntimeError(f"warm-up events did not arrive; see {workdir}")
        receiver.reset()
        load = os.getloadavg()[0]
        groups = {
            "workers": [p.pid for p in processes],
            "api": [api_pid],
            "receiver": [receiver.process.pid],
            "database": backend.database_pids(),
        }
        me = psutil.Process()  # the load generator: this process alone (the servers are its children)
        cpu_before, busy_before, cpu_from = cpu_seconds(groups), machine_busy_seconds(), time.monotonic()
        own_before = sum(me.cpu_times()[:2])
        run = asyncio.run(
            publish_paced(base_url, token, sizes.latency_rate, sizes.latency_s, LATENCY_BATCH, _latency_payload)
        )
        cpu_after, busy_after, cpu_window = cpu_seconds(groups), machine_busy_seconds(), time.monotonic() - cpu_from
        own_after = sum(me.cpu_times()[:2])
        expected = len(run.published)
        wait_for(lambda: receiver.stats()["unique"] >= expected, 60, 0.2)
        arrivals = receiver.arrivals()
        stats = receiver.stats()
    cores = cpu_share(cpu_before, cpu_after, cpu_window)
    cores["load_generator"] = round((own_after - own_before) / cpu_window, 2)
    cores["whole_machine"] = round((busy_after - busy_before) / cpu_window, 2)
    latencies = [(arrivals[key] - at) * 1000 for key, at in run.published.items() if key in arrivals]
    return {
        "offered_events_per_s": sizes.latency_rate,
        "seconds": sizes.latency_s,
        "events": expected,
        "received": len(latencies),
        "duplicates": stats["requests"] - stats["unique"],
        "latency_ms": percentiles(latencies),
        "ingest_answer_ms": percentiles(run.ingest_ms),
        "pacer_lag_ms": percentiles(run.lag_ms),
        "cores_used_while_publishing": cores,
        "load_average_before": round(load, 2),
    }


def measure_memory(backend: Backend, receiver: Receiver, sizes: Sizes) -> dict[str, Any]:
    """Peak RSS of the API while a million deliveries are made pending, then of the API and one worker."""
    url, workdir = backend.fresh("memory")
    body = orjson.dumps([_payload(n, "mem", PADDING) for n in range(MEMORY_BATCH)])
    requests = -(-sizes.memory_pending // MEMORY_BATCH)
    with bench_server(url, workdir, "--no-worker") as (base_url, token, api_pid):
        subscribe(base_url, token, receiver.url())
        started = time.monotonic()
        with RssSampler({"api": [api_pid]}) as during_preload:
            asyncio.run(publish_all(base_url, token, iter([body] * requests), connections=2))
        preload_s = time.monotonic() - started
        receiver.reset()
        with running_workers(1, url, workdir) as processes:
            worker_pid = processes[0].pid
            with RssSampler({"worker": [worker_pid], "api": [api_pid]}) as during_delivery:
                time.sleep(sizes.memory_deliver_s)
                stats = receiver.stats()
    window = stats["last"] - stats["first"]
    return {
        "pending": requests * MEMORY_BATCH,
        "preload_events_per_s": round(requests * MEMORY_BATCH / preload_s),
        "deliver_s": sizes.memory_deliver_s,
        "delivered": stats["unique"],
        "deliveries_per_s": round((stats["unique"] - 1) / window) if window > 0 else 0,
        "peak_rss_mb": {
            "worker": during_delivery.peaks_mb()["worker"],
            "api_while_delivering": during_delivery.peaks_mb()["api"],
            "api_while_ingesting": during_preload.peaks_mb()["api"],
        },
    }


def measure_wrk(seconds: int) -> dict[str, Any]:
    """The receiver's raw request rate under wrk: 2 threads, 64 connections, a 1 KB POST body."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return {"error": "wrk is not installed (Debian package wrk: apt-get install -y wrk)"}
    with running_receiver() as receiver:
        command = [wrk, "-t2", "-c64", f"-d{seconds}s", "-s", str(WRK_SCRIPT), receiver.url()]
        output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
        received = receiver.stats()["requests"]
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    latency = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", output)
    return {
        "command": " ".join(["wrk", *command[1:4], "-s", "bench/wrk-post.lua", "http://127.0.0.1:PORT/hook"]),
        "requests_per_s": round(float(rate.group(1))) if rate else None,
        "latency_avg": latency.group(1) if latency else None,
        "latency_stdev": latency.group(2) if latency else None,
        "requests_counted_by_receiver": received,
    }


def _guarded(label: str, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one measurement; a failure is recorded with its message instead of ending the whole run."""
    print(f"-- {label}", file=sys.stderr, flush=True)
    try:
        result = measure()
    except Exception as exc:  # a failed configuration is a result too
        print(f"   failed: {exc!r}", file=sys.stderr, flush=True)
        return {"error": repr(exc)[:2000]}
    print(f"   {orjson.dumps(result).decode()}", file=sys.stderr, flush=True)
    return result


LATENCY_MODES = ("serve", "1", "4")


def run_backend(name: str, sizes: Sizes, phases: set[str], latency_modes: tuple[str, ...]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with open_backend(name) as backend, running_receiver() as receiver:
        if "sustained" in phases:
            results["sustained"] = {
                case.label: _guarded(
                    f"{name} sustained, {case.label}",
                    functools.partial(measure_sustained, backend, receiver, case, sizes.sustained_events),
                )
                for case in SUSTAINED_CASES
            }
        if "latency" in phases:
            results["latency"] = {
                mode: _guarded(
                    f"{name} latency, {mode}",
                    functools.partial(measure_latency, backend, receiver, mode, sizes),
                )
                for mode in latency_modes
            }
        if "memory" in phases:
            results["memory"] = _guarded(f"{name} memory", lambda: measure_memory(backend, receiver, sizes))
    return results


def _table(results: dict[str, Any], reference: dict[str, Any] | None) -> str:
    lines = [f"{'backend':<11}{'figure':<44}{'value':>12}  target"]

    def row(backend: str, figure: str, value: object, target: str = "") -> None:
        lines.append(f"{backend:<11}{figure:<44}{value!s:>12}  {target}")

    for backend, phases in results.items():
        for key, result in phases.get("sustained", {}).items():
            value = result.get("deliveries_per_s")
            if value is None and "first_to_last_per_s" in result:
                value = f"{result['first_to_last_per_s']} (first-last)"
            elif value is None:
                value = str(result.get("error", "?"))[:40]
            row(backend, f"sustained deliveries/s, {key.replace('_', ' ')}", value, ">= 3000")
        for mode, result in phases.get("latency", {}).items():
            label = "serve (API+worker)" if mode == "serve" else f"{mode} worker process(es)"
            latency = result.get("latency_ms", {})
            value = f"{latency.get('p50', '?')}/{latency.get('p99', '?')}" if latency else result.get("error", "?")
            row(backend, f"p50/p99 ms @500/s, {label}", value, "p99 <= 50")
        memory = phases.get("memory")
        if memory:
            peaks = memory.get("peak_rss_mb", {})
            pending = memory.get("pending", "?")
            row(
                backend,
                f"peak RSS MB worker, {pending} pending",
                peaks.get("worker", memory.get("error", "?")),
                "<= 300",
            )
            row(backend, "peak RSS MB API (delivering)", peaks.get("api_while_delivering", "?"), "<= 300")
            row(backend, "peak RSS MB API (ingesting)", peaks.get("api_while_ingesting", "?"))
    if reference:
        row("reference", "wrk -t2 -c64, 1 KB POST, requests/s", reference.get("requests_per_s", "?"))
    return "\n".join(lines)


def main() -> None:
    """Run the phases on both backends and write bench/results/webhook.json."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke check")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--phases", default="sustained,latency,memory,wrk")
    parser.add_argument(
        "--latency-modes",
        default=",".join(LATENCY_MODES),
        help="latency configurations: serve (API and worker in one process), 1 or 4 worker processes",
    )
    parser.add_argument("--no-save", action="store_true", help="print the results; leave bench/results alone")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    phases = set(args.phases.split(","))
    latency_modes = tuple(args.latency_modes.split(","))
    unknown = set(latency_modes) - set(LATENCY_MODES)
    if unknown:
        parser.error(f"--latency-modes: unknown {', '.join(sorted(unknown))}; choose from {', '.join(LATENCY_MODES)}")
    reference = _guarded("wrk reference", lambda: measure_wrk(sizes.wrk_s)) if "wrk" in phases else None
    results = {backend: run_backend(backend, sizes, phases, latency_modes) for backend in args.backends.split(",")}
    summary = {
        "payload_bytes": len(orjson.dumps(_payload(12345, "lat", PADDING))),
        "event": EVENT_NAME,
        "subscriptions": 1,
        "sizes": sizes.__dict__,
        "targets": TARGETS,
        "reference_wrk": reference,
        "results": results,
    }
    if not args.no_save:
        write_result("webhook", summary)
    print(_table(results, reference))


if __name__ == "__main__":
    main()
