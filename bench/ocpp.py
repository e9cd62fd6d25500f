"""`make bench-ocpp`: simulated charge points through the OCPP tap to the dev CSMS, beside the same run direct.

Four processes: the dev CSMS (`chargewire dev csms`), the tap (`chargewire ocpp serve`, embedded SQLite),
and the charge points (this module's `load` mode, asyncio on uvloop), so the tap's CPU and memory are its
own. Each 1.6 charge point boots, starts a transaction and then sends MeterValues (energy, power, current,
voltage, state of charge; each causes a SessionMeterValuesNotification and a SessionUpdateNotification).

1. Paced: 1,000 charge points at 1,750 MeterValues/s in all (3,500 events/s, the peak hour of a
   100,000-charge-point operator), once direct to the CSMS and once through the tap: CALL to CALLRESULT
   latency p50/p99 of each and the difference, frames/s forwarded, events/s published, the tap's CPU per frame.
2. Flat out: 200 charge points, each sending its next call when the last is answered.
3. Connections: idle charge points (booted, then quiet) held through the tap; the tap's RSS at 1,000 and at
   9,900 (the container's hard limit of 20,000 open files allows no more: the tap holds two sockets per charge
   point).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import uvloop
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from bench.common import backend_database, server_env, write_result
from chargewire.devtools.postgres import free_port
from tests.support.processes import CHARGEWIRE, cli, stop_process

PACED_CHARGE_POINTS = 1000
PACED_CALLS_PER_S = 1750
FLAT_OUT_CHARGE_POINTS = 200
RUN_S = 15.0
HELD = (1000, 9900)
_COUNTER = re.compile(r"^(chargewire_ocpp_\w+_total)(?:\{[^}]*\})? (\S+)$", re.MULTILINE)


# ---- the charge points (run as `python -m bench.ocpp load ...`) ----


class _ChargePoint:
    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.ids = itertools.count()

    async def call(self, action: str, payload: dict[str, Any]) -> Any:
        unique_id = str(next(self.ids))
        await self.connection.send(orjson.dumps([2, unique_id, action, payload]).decode())
        while True:
            answer = orjson.loads(await self.connection.recv())
            if answer[1] == unique_id:
                return answer[2]


async def _connect(url: str, identity: str) -> _ChargePoint:
    connection = await connect(
        f"{url}{identity}",
        subprotocols=[Subprotocol("ocpp1.6")],
        compression=None,
        proxy=None,
        ping_interval=None,
        open_timeout=60,
    )
    charge_point = _ChargePoint(connection)
    await charge_point.call("BootNotification", {"chargePointVendor": "Bench", "chargePointModel": "B1"})
    return charge_point


async def _connect_many(url: str, first: int, count: int, prefix: str) -> list[_ChargePoint]:
    gate = asyncio.Semaphore(50)

    async def one(number: int) -> _ChargePoint:
        async with gate:
            return await _connect(url, f"{prefix}-{number}")

    return list(await asyncio.gather(*(one(number) for number in range(first, first + count))))


def _meter_values(transaction_id: int, energy_wh: int) -> dict[str, Any]:
    sampled = [
        {"value": str(energy_wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
        {"value": "11040", "measurand": "Power.Active.Import", "unit": "W"},
        {"value": "16.0", "measurand": "Current.Import", "unit": "A"},
        {"value": "230.1", "measurand": "Voltage", "unit": "V"},
        {"value": "57", "measurand": "SoC", "unit": "Percent"},
    ]
    moment = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "connectorId": 1,
        "transactionId": transaction_id,
        "meterValue": [{"timestamp": moment, "sampledValue": sampled}],
    }


async def _traffic(url: str, charge_points: int, calls_per_s: float, duration_s: float, prefix: str) -> dict[str, Any]:
    fleet = await _connect_many(url, 0, charge_points, prefix)
    transactions = [
        (
            await charge_point.call(
                "StartTransaction",
                {"connectorId": 1, "idTag": "BENCH", "meterStart": 0, "timestamp": "2026-01-01T00:00:00Z"},
            )
        )["transactionId"]
        for charge_point in fleet
    ]
    latencies: list[float] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + duration_s
    interval = charge_points / calls_per_s if calls_per_s else 0.0

    async def run(index: int) -> None:
        charge_point, transaction_id = fleet[index], transactions[index]
        due = start + (interval * index / charge_points if interval else 0.0)
        energy = 0
        while True:
            if interval:
                await asyncio.sleep(max(0.0, due - loop.time()))
                due += interval
            if loop.time() >= end:
                return
            energy += 90
            # perf_counter: the loop's clock (libuv's) counts whole milliseconds.
            sent = time.perf_counter()
            await charge_point.call("MeterValues", _meter_values(transaction_id, energy))
            latencies.append(time.perf_counter() - sent)

    await asyncio.gather(*(run(index) for index in range(charge_points)))
    elapsed = loop.time() - start
    latencies.sort()
    for charge_point in fleet:
        await charge_point.connection.close()
    return {
        "calls": len(latencies),
        "calls_per_s": round(len(latencies) / elapsed),
        "latency_p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "latency_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
    }


async def _hold(url: str, stages: list[int]) -> None:
    held: list[_ChargePoint] = []
    for target in stages:
        held += await _connect_many(url, len(held), target - len(held), "held")
        print(f"ready {len(held)}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


def _load_main(arguments: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench.ocpp load")
    parser.add_argument("--url", required=True)
    parser.add_argument("--charge-points", type=int, default=PACED_CHARGE_POINTS)
    parser.add_argument("--calls-per-s", type=float, default=0)
    parser.add_argument("--duration-s", type=float, default=RUN_S)
    parser.add_argument("--prefix", default="cp")
    parser.add_argument("--hold", default="")
    options = parser.parse_args(arguments)
    if options.hold:
        uvloop.run(_hold(options.url, [int(part) for part in options.hold.split(",")]))
        return
    result = uvloop.run(
        _traffic(options.url, options.charge_points, options.calls_per_s, options.duration_s, options.prefix)
    )
    print(json.dumps(result), flush=True)


# ---- the orchestration ----


def _raise_open_file_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextlib.contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        process = subprocess.Popen(args, env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        stop_process(process, timeout_s=20)


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if process.poll() is not None:
            raise RuntimeError(f"process {process.args} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def _load(url: str, *args: str) -> dict[str, Any]:
    finished = subprocess.run(
        [sys.executable, "-m", "bench.ocpp", "load", "--url", url, *args], capture_output=True, text=True, check=True
    )
    return dict(json.loads(finished.stdout.strip().splitlines()[-1]))


def _counters(tap_port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{tap_port}/metrics", timeout=10).text
    totals: dict[str, float] = {}
    for name, value in _COUNTER.findall(text):
        totals[name] = totals.get(name, 0.0) + float(value)
    return totals


def _cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _rss_mb(pid: int) -> float:
    return round(psutil.Process(pid).memory_info().rss / 2**20, 1)


def _through_tap(tap_url: str, tap_port: int, tap_pid: int, *load_args: str) -> dict[str, Any]:
    """One load run through the tap, with the tap's frames, events and CPU over it."""
    before, cpu_before, started = _counters(tap_port), _cpu_s(tap_pid), time.monotonic()
    result = _load(tap_url, *load_args)
    # Publishing trails forwarding by the queue: give it a moment to catch up before reading the counters.
    time.sleep(2)
    after, cpu_after, elapsed = _counters(tap_port), _cpu_s(tap_pid), time.monotonic() - started
    frames = after["chargewire_ocpp_frames_total"] - before.get("chargewire_ocpp_frames_total", 0)
    events = after["chargewire_ocpp_events_published_total"] - before.get("chargewire_ocpp_events_published_total", 0)
    return {
        **result,
        "frames_forwarded": int(frames),
        "frames_per_s": round(frames / elapsed),
        "events_published": int(events),
        "events_per_s": round(events / elapsed),
        "tap_cpu_us_per_frame": round((cpu_after - cpu_before) / frames * 1e6, 1),
        "tap_rss_mb": _rss_mb(tap_pid),
    }


def _held_rss(tap_url: str, tap_pid: int) -> dict[str, float]:
    rss: dict[str, float] = {}
    holder = subprocess.Popen(
        [sys.executable, "-m", "bench.ocpp", "load", "--url", tap_url, "--hold", ",".join(map(str, HELD))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None
    assert holder.stdout is not None
    try:
        for _ in HELD:
            count = int(holder.stdout.readline().split()[1])
            time.sleep(2)
            rss[str(count)] = _rss_mb(tap_pid)
            holder.stdin.write("\n")
            holder.stdin.flush()
        holder.wait(timeout=60)
    finally:
        if holder.poll() is None:
            holder.send_signal(signal.SIGTERM)
            holder.wait()
    return rss


def main() -> None:
    """Run the three measures and write bench/results/ocpp.json."""
    _raise_open_file_limit()
    with tempfile.TemporaryDirectory(prefix="bench-ocpp-") as folder:
        workdir = Path(folder)
        csms_port, tap_port = free_port(), free_port()
        with backend_database("sqlite", workdir) as database_url:
            env = server_env(
                database_url,
                workdir,
                {
                    "CHARGEWIRE_OCPP_LISTEN": f"127.0.0.1:{tap_port}",
                    "CHARGEWIRE_OCPP_UPSTREAM": f"ws://127.0.0.1:{csms_port}/ocpp/",
                },
            )
            cli(env, "db", "upgrade")
            csms_args = [CHARGEWIRE, "dev", "csms", "--port", str(csms_port)]
            with _process(csms_args, env, workdir / "csms.log") as csms:
                _wait_for_port(csms_port, csms)
                with _process([CHARGEWIRE, "ocpp", "serve"], env, workdir / "tap.log") as tap:
                    _wait_for_port(tap_port, tap)
                    direct_url = f"ws://127.0.0.1:{csms_port}/ocpp/"
                    tap_url = f"ws://127.0.0.1:{tap_port}/ocpp/"
                    paced = ["--charge-points", str(PACED_CHARGE_POINTS), "--calls-per-s", str(PACED_CALLS_PER_S)]
                    flat = ["--charge-points", str(FLAT_OUT_CHARGE_POINTS)]
                    result = {
                        "paced_direct": _load(direct_url, *paced, "--prefix", "direct"),
                        "paced_tap": _through_tap(tap_url, tap_port, tap.pid, *paced, "--prefix", "paced"),
                        "flat_out_direct": _load(direct_url, *flat, "--prefix", "flat-direct"),
                        "flat_out_tap": _through_tap(tap_url, tap_port, tap.pid, *flat, "--prefix", "flat"),
                        "held_rss_mb": _held_rss(tap_url, tap.pid),
                    }
    paced_direct, paced_tap = result["paced_direct"], result["paced_tap"]
    result["added_latency_ms"] = {
        "p50": round(paced_tap["latency_p50_ms"] - paced_direct["latency_p50_ms"], 2),
        "p99": round(paced_tap["latency_p99_ms"] - paced_direct["latency_p99_ms"], 2),
    }
    write_result("ocpp", result)


if __name__ == "__main__":
    if sys.argv[1:2] == ["load"]:
        _load_main(sys.argv[2:])
    else:
        main()
