"""HTTP client for the webhook channel: httpx, aiohttp and chargewire's own, against the same loopback receiver.

The receiver is a raw asyncio protocol on uvloop in its own process: it parses just enough HTTP/1.1 to
answer each request with `202 {}` on a keep-alive connection, so it costs a fraction of what a client
costs and the figures are the client's. Each client runs in a fresh process (`client` sub-command) that
POSTs 1 KB bodies from `--concurrency` tasks through one pooled client for `--seconds`, after a warm-up,
and reports requests/s, its own CPU time (user + system, all threads), latency percentiles and peak RSS.
Rounds alternate the libraries so drift on the machine hits both alike.

`httpx+sniffio` is httpx with `sniffio` importable. httpcore 1.0.9 imports `sniffio` on every lock and
semaphore use; anyio 4.16 no longer depends on it, so in this environment each of those imports fails and
rescans `sys.path` (failed imports are not cached), several times per request. When `sniffio` is missing the
variant installs a stand-in answering "asyncio", so httpx is also measured as it runs with the dependency.

`chargewire` is the webhook channel's own client (`chargewire.channels.http_pool`): the same pooled exchange
`WebhookChannel` makes, with the request's bytes built once, as the channel builds them per attempt.

With `--gap-ms`, each task pauses between its requests: one task with a 2 ms gap is a low rate, where every
request finds the loop idle and pays its wake-ups alone (saved as `http_client_compare_gap`).

Usage: python -m bench.http_client_compare [--seconds 5] [--concurrency 64,8] [--rounds 3] [--loops asyncio,uvloop]
    [--libraries httpx,httpx+sniffio,aiohttp,chargewire] [--gap-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import resource
import ssl
import statistics
import subprocess
import sys
import time
import types
from importlib.metadata import version
from typing import Any, cast

import psutil

from bench.common import write_result
from chargewire.devtools.postgres import free_port

LIBRARIES = ("httpx", "httpx+sniffio", "aiohttp", "chargewire")
BODY = (b'{"notification":"SessionMeterValuesNotification","data":"' + b"x" * 1024)[:1022] + b'"}'
_RESPONSE = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
_CONTENT_LENGTH = b"\r\ncontent-length:"


class _Receiver(asyncio.Protocol):
    """Answers every complete request on the connection with 202; keeps the connection open."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        answered = 0
        while True:
            head_end = buffer.find(b"\r\n\r\n")
            if head_end < 0:
                break
            head = bytes(buffer[:head_end]).lower()
            start = head.find(_CONTENT_LENGTH)
            length = 0
            if start >= 0:
                start += len(_CONTENT_LENGTH)
                stop = head.find(b"\r\n", start)
                length = int(head[start : stop if stop >= 0 else len(head)])
            total = head_end + 4 + length
            if len(buffer) < total:
                break
            del buffer[:total]
            answered += 1
        if answered and self._transport is not None:
            self._transport.write(_RESPONSE * answered)


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Receiver, "127.0.0.1", port, backlog=1024)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


async def _run_httpx(url: str, seconds: float, concurrency: int, gap_s: float) -> tuple[int, list[float]]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=15.0, trust_env=False) as client:

        async def one() -> None:
            response = await client.post(url, content=BODY, headers={"Content-Type": "application/json"})
            if response.status_code != 202:
                raise RuntimeError(f"receiver answered {response.status_code}")

        return await _drive(one, seconds, concurrency, gap_s)


def _provide_sniffio() -> None:
    """Make `import sniffio` succeed: the real package if installed, else a stand-in for asyncio."""
    try:
        import sniffio  # noqa: F401
    except ImportError:
        stand_in = types.ModuleType("sniffio")
        stand_in.current_async_library = lambda: "asyncio"  # type: ignore[attr-defined]
        sys.modules["sniffio"] = stand_in


async def _run_aiohttp(url: str, seconds: float, concurrency: int, gap_s: float) -> tuple[int, list[float]]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=15.0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> None:
            headers = {"Content-Type": "application/json"}
            async with session.post(url, data=BODY, headers=headers, allow_redirects=False) as response:
                await response.read()
                if response.status != 202:
                    raise RuntimeError(f"receiver answered {response.status}")

        return await _drive(one, seconds, concurrency, gap_s)


async def _run_chargewire(url: str, seconds: float, concurrency: int, gap_s: float) -> tuple[int, list[float]]:
    from chargewire.channels.http_pool import ConnectionPool, Origin

    loopback = ipaddress.ip_address("127.0.0.1")
    port = int(url.split(":")[2].split("/")[0])
    pool = ConnectionPool(
        allow=(ipaddress.ip_network("127.0.0.0/8"),),
        ssl_context=ssl.create_default_context(),
        connect_timeout_s=5.0,
        limit=concurrency,
        limit_per_host=concurrency,
        keepalive_s=4.0,
        body_limit=20 * 1024,
    )
    origin = Origin(False, str(loopback), port, loopback)
    head = f"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\nContent-Type: application/json\r\n"
    request = head.encode() + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY
    loop = asyncio.get_running_loop()

    async def one() -> None:
        response, _ = await pool.exchange(origin, request, loop.time() + 15.0)
        if response.status != 202:
            raise RuntimeError(f"receiver answered {response.status}")

    try:
        return await _drive(one, seconds, concurrency, gap_s)
    finally:
        await pool.aclose()


async def _drive(one: Any, seconds: float, concurrency: int, gap_s: float) -> tuple[int, list[float]]:
    """Warm up for a second, then run `concurrency` workers for `seconds`, each pausing `gap_s` between its
    requests (a low rate: each request then finds the loop idle); returns (requests, latencies)."""
    latencies: list[float] = []
    measuring = False
    deadline = 0.0

    async def worker() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await one()
            if measuring:
                latencies.append(time.perf_counter() - started)
            if gap_s:
                await asyncio.sleep(gap_s)

    deadline = time.perf_counter() + 1.0
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    measuring = True
    deadline = time.perf_counter() + seconds
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies), latencies


def _client(library: str, loop_name: str, port: int, seconds: float, concurrency: int, gap_s: float) -> dict[str, Any]:
    """One measurement in this process: the numbers for one library on one event loop."""
    url = f"http://127.0.0.1:{port}/webhook"
    run = {"aiohttp": _run_aiohttp, "chargewire": _run_chargewire}.get(library, _run_httpx)
    if library == "httpx+sniffio":
        _provide_sniffio()
    cpu_before = time.process_time()
    wall_before = time.perf_counter()
    if loop_name == "uvloop":
        import uvloop

        count, latencies = uvloop.run(run(url, seconds, concurrency, gap_s))
    else:
        count, latencies = asyncio.run(run(url, seconds, concurrency, gap_s))
    wall = time.perf_counter() - wall_before
    cpu = time.process_time() - cpu_before
    # Warm-up is one second of the wall time: the CPU share of the measured part is taken as proportional.
    measured_cpu = cpu * seconds / wall
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "library": library,
        "loop": loop_name,
        "concurrency": concurrency,
        "requests": count,
        "req_per_s": round(count / seconds, 1),
        "client_cpu_s": round(measured_cpu, 3),
        "client_cpu_us_per_req": round(measured_cpu / count * 1e6, 1),
        "latency_p50_ms": round(quantiles[49] * 1000, 2),
        "latency_p99_ms": round(quantiles[98] * 1000, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _measure(
    library: str, loop_name: str, port: int, args: argparse.Namespace, concurrency: int, server: psutil.Process
) -> dict[str, Any]:
    seconds = args.seconds
    before = server.cpu_times()
    output = subprocess.run(
        [
            *(sys.executable, "-m", "bench.http_client_compare", "client", library, loop_name, str(port)),
            *("--seconds", str(seconds), "--concurrency", str(concurrency), "--gap-ms", str(args.gap_ms)),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    after = server.cpu_times()
    result: dict[str, Any] = json.loads(output)
    busy = (after.user - before.user) + (after.system - before.system)
    result["receiver_cpu_share"] = round(busy / (seconds + 1.0), 2)
    return result


def _summary(runs: list[dict[str, Any]], libraries: list[str]) -> list[dict[str, Any]]:
    """Median of the rounds for each (concurrency, loop, library)."""
    rows = []
    for concurrency, loop_name in dict.fromkeys((run["concurrency"], run["loop"]) for run in runs):
        for library in libraries:
            mine = [
                run
                for run in runs
                if (run["library"], run["loop"], run["concurrency"]) == (library, loop_name, concurrency)
            ]
            row: dict[str, Any] = {
                "library": library,
                "version": version(library.split("+")[0]),
                "loop": loop_name,
                "concurrency": concurrency,
            }
            for key in ("req_per_s", "client_cpu_us_per_req", "latency_p50_ms", "latency_p99_ms", "peak_rss_mib"):
                row[key] = round(statistics.median(run[key] for run in mine), 2)
            row["receiver_cpu_share"] = max(run["receiver_cpu_share"] for run in mine)
            rows.append(row)
    return rows


def main() -> None:
    """Parse arguments; run the receiver, one client, or the whole comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", default="64,8", help="comma-separated in-flight request counts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loops", default="asyncio,uvloop")
    parser.add_argument("--libraries", default=",".join(LIBRARIES))
    parser.add_argument("--gap-ms", type=float, default=0.0, help="pause of each task between its requests")
    parser.add_argument("role", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role[:1] == ["serve"]:
        import uvloop

        uvloop.run(_serve(int(args.role[1])))
        return
    if args.role[:1] == ["client"]:
        _, library, loop_name, port = args.role
        gap_s = args.gap_ms / 1000
        print(json.dumps(_client(library, loop_name, int(port), args.seconds, int(args.concurrency), gap_s)))
        return

    libraries = args.libraries.split(",")
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, "-m", "bench.http_client_compare", "serve", str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert receiver.stdout is not None
        receiver.stdout.readline()
        server = psutil.Process(receiver.pid)
        runs = []
        for _ in range(args.rounds):
            for concurrency in (int(part) for part in args.concurrency.split(",")):
                for loop_name in args.loops.split(","):
                    for library in libraries:
                        runs.append(_measure(library, loop_name, port, args, concurrency, server))
                        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
    write_result(
        "http_client_compare_gap" if args.gap_ms else "http_client_compare",
        {
            "body_bytes": len(BODY),
            "seconds_per_run": args.seconds,
            "rounds": args.rounds,
            "gap_ms": args.gap_ms,
            "summary": _summary(runs, libraries),
            "runs": runs,
        },
        module="http_client_compare",
    )


if __name__ == "__main__":
    main()
