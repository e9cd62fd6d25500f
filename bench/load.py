"""Cost and latency at the rates operators run: CPU per event and publish-to-receipt latency, 50 to 2,000 events/s.

The saturation benchmarks (`bench.ingest`, `bench.webhook`) amortise per-event costs into batches; this one
offers fixed rates the way a back office does. Everything runs as real processes on this machine:
`chargewire serve` (the "serve" row) or `serve --no-worker` beside one `chargewire worker` (the "worker" row),
on SQLite and on a throwaway PostgreSQL cluster; one webhook subscription to a receiver in its own process; and
an open-loop publisher in its own process. Both peers are in Go (`bench/loadpeers`, see `bench.load_peers`), so
they take little of the cores chargewire runs on. At each rate, ~1 KB SessionMeterValuesNotification events are
sent on a fixed clock for the set seconds, one event per request ("single") and then ten per request ("batch10"),
never waiting for answers (up to 64 keep-alive connections).

Per rate and publishing style:
- latency: the receiver's arrival time minus the event's *scheduled* send time (one monotonic clock), so a
  publisher or server that falls behind shows up in the figure; p50/p99/max;
- CPU ms per event: CPU time (user + system, `/proc/<pid>/stat`, descendants and waited-for children included)
  from the first send until the last event arrived, divided by the events; for chargewire's processes, for
  PostgreSQL's (the postmaster and its backends), for the receiver, and for the publisher (its own count, from
  its first scheduled send to its last answer);
- how often the tail happens: the share of events later than 50 ms, and in how many seconds of the run any was;
- the publisher's lag (how late each request left) and the ingest answer time (scheduled send to 202);
- peak RSS of each group (sampled every 0.2 s), events lost (sent, accepted, never received), requests rejected,
  duplicates (requests whose webhook-id came before, and events received twice), and webhooks whose signatures
  did not verify (the receiver checks both against the subscription's keys).

The machine's load average before each measure is recorded: it is shared with other work. The host's speed moves
within minutes, so the whole run is made `--passes` times (3 unless told), each on fresh processes, and each
figure is the median of its passes, with every pass kept beside it (`bench.load_passes`): counts of events,
losses and duplicates are summed, maxima and peaks are the largest.
Usage: python -m bench.load [--seconds 20] [--rates 50,200,800,2000] [--backends sqlite,postgresql]
       [--modes serve,worker] [--publishing single,batch10] [--passes 3] [--no-save] [--profile DIR] [--probe DIR]
With --profile DIR, py-spy samples chargewire's processes during each measure (collapsed stacks in DIR, read
with `python -m bench.profile_summary`); such a run's figures include py-spy's cost, so they are not saved.
With --probe DIR, `bench.load_probe` runs inside chargewire's processes and each measure gets a "probe" summary:
the event loop's lag, GC pauses, SQLite's writer turns, group commits, record flushes, attempts, hand-offs and
claims (not saved either: the probe costs a little CPU).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.common import (
    WakeReference,
    bench_server,
    machine_busy_seconds,
    python_reference_ms,
    tree_cpu_s,
    write_result,
)
from bench.kafka import one_kb_payloads
from bench.load_passes import combined_results
from bench.load_peers import PublisherRun, check_signatures, publish, refused_signatures, running_signing_receiver
from bench.load_probe import PROBE_FOLDER_ENV, read_records, summarise
from bench.load_report import markdown_table, write_plot
from bench.paced import latency_tag, percentiles, wait_for
from bench.processes import Backend, RssSampler, open_backend, running_workers
from bench.receiver import Receiver
from tests.support.processes import stop_process

EVENT_NAME = "SessionMeterValuesNotification"
RATES = (50, 200, 800, 2000)
PASSES = 3
MODES = {"serve": 0, "worker": 1}  # mode -> `chargewire worker` processes beside the API (0: `serve` delivers)
PUBLISHING = {"single": 1, "batch10": 10}  # style -> events per request
WARM_UP_RATE, WARM_UP_S = 100, 2
DRAIN_TIMEOUT_S = 60
# Later than this an event counts as late (issue 21's p99 target at 2,000 events/s).
LATE_MS = 50
# Every event's fields but the two the publisher sets per event: `sessionId`, and `externalSessionId` carrying
# the latency tag the receiver times.
EVENT_FIELDS = {
    key: value for key, value in one_kb_payloads(1)[0].items() if key not in {"sessionId", "externalSessionId"}
}
PAYLOAD_BYTES = len(orjson.dumps({"sessionId": 700_000, "externalSessionId": latency_tag(12345), **EVENT_FIELDS}))
# The probe writes its records once a second: this long after a measure, they are all in its files.
PROBE_DUMP_WAIT_S = 1.2
PY_SPY = Path(sys.executable).with_name("py-spy")
PROBE_PATH = Path(__file__).resolve().parent / "probe"


@dataclass(frozen=True)
class Stack:
    """The running processes of one configuration, and where to reach them."""

    backend: Backend
    receiver: Receiver
    base_url: str
    token: str
    groups: dict[str, list[int]]


@contextmanager
def running_stack(backend: Backend, receiver: Receiver, mode: str) -> Iterator[Stack]:
    """A fresh database, the API (with or without its own worker), the mode's workers, one subscription."""
    url, workdir = backend.fresh(f"load-{mode}")
    serve_args = ("--no-worker",) if MODES[mode] else ()
    with (
        bench_server(url, workdir, *serve_args) as (base_url, token, api_pid),
        running_workers(MODES[mode], url, workdir) as workers,
    ):
        check_signatures(receiver, _subscribe(base_url, token, receiver.url()), token)
        groups = {
            "chargewire": [api_pid, *(worker.pid for worker in workers)],
            "postgresql": backend.database_pids(),
            "receiver": [receiver.process.pid],
        }
        yield Stack(backend, receiver, base_url, token, groups)


def _subscribe(base_url: str, token: str, callback_url: str) -> str:
    """Subscribe the receiver to the benchmark's event (Notifications API v2.0); returns the signing secret."""
    body = {"via": "webhook", "notifications": [EVENT_NAME], "webhook": {"callbackUrl": callback_url}}
    headers = {"Authorization": f"Bearer {token}"}
    created = httpx.post(f"{base_url}/public-api/notifications/v2.0", json=body, headers=headers, timeout=30)
    created.raise_for_status()
    secret: str = created.json()["data"]["signingSecret"]
    return secret


class Sequence:
    """Event numbers handed out in blocks, so that a late arrival from one measure never counts in the next."""

    def __init__(self) -> None:
        self.next = 0

    def take(self, count: int) -> int:
        first, self.next = self.next, self.next + count
        return first


def _publish(stack: Stack, rate: int, seconds: float, batch: int, first: int) -> PublisherRun:
    return publish(stack.base_url, stack.token, rate, seconds, batch, first, EVENT_FIELDS)


@contextmanager
def profiled(pids: list[int], seconds: float, prefix: Path | None) -> Iterator[None]:
    """Sample each process with py-spy (collapsed stacks, `<prefix>-<pid>.txt`) for `seconds`; nothing if no prefix.

    `--nonblocking` reads the stacks without pausing the process, so the figures move as little as possible.
    """
    if prefix is None:
        yield
        return
    command = [str(PY_SPY), "record", "--format", "raw", "--nolineno", "--nonblocking", "--duration"]
    spies = [
        subprocess.Popen(
            [*command, str(round(seconds)), "--pid", str(pid), "--output", f"{prefix}-{pid}.txt"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in pids
    ]
    try:
        yield
    finally:
        for spy in spies:
            try:
                spy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                stop_process(spy)


def _arrived(receiver: Receiver, count: int) -> bool:
    return int(receiver.stats()["tagged"]) >= count


def measure(
    stack: Stack,
    rate: int,
    seconds: float,
    batch: int,
    sequence: Sequence,
    profile: Path | None = None,
    probe: Path | None = None,
) -> dict[str, Any]:
    """Publish `rate` events/s for `seconds`, `batch` per request, and wait for every event at the receiver.

    With `profile`, chargewire's processes are sampled by py-spy while the events are published; with `probe`
    (the folder `bench.load_probe` writes to), what the probe saw in them during the measure is added.
    """
    receiver = stack.receiver
    receiver.reset()
    # The host's speed moves by up to 2x within an hour (this process's reference: 35 to 69 ms), with no steal to
    # show it, and an event's CPU at 200/s with it: each measure names the speed it ran at, and what a wake-up cost
    # the host while it ran (`WakeReference`), which moves by as much within minutes while the reference stays put.
    reference_ms = python_reference_ms()
    load = os.getloadavg()[0]
    cpu_before = {name: tree_cpu_s(pids) for name, pids in stack.groups.items()}
    busy_before, started = machine_busy_seconds(), time.monotonic()
    with (
        RssSampler({name: pids for name, pids in stack.groups.items() if pids}) as rss,
        profiled(stack.groups["chargewire"], seconds, profile),
        WakeReference() as wake,
    ):
        run = _publish(stack, rate, seconds, batch, sequence.take(round(rate * seconds) + batch))
        expected = set(run.published)
        complete = wait_for(lambda: _arrived(receiver, len(expected)), DRAIN_TIMEOUT_S, 0.1)
    arrivals, stats = receiver.arrivals(), receiver.stats()
    window = max(arrivals.values(), default=time.monotonic()) - started if complete else time.monotonic() - started
    cpu_s = {name: tree_cpu_s(pids) - cpu_before[name] for name, pids in stack.groups.items()} | {
        "publisher": run.cpu_s
    }
    events = len(expected)
    probed = _probed(probe, started, started + window) if probe else {}
    timed = [(at, (arrivals[tag] - at) * 1000) for tag, at in run.published.items() if tag in arrivals]
    latencies = [latency for _at, latency in timed]
    return {
        "offered_events_per_s": rate,
        "events_per_request": batch,
        "seconds": seconds,
        "events": events,
        "rejected": run.rejected,
        "received": len(latencies),
        "lost": events - len(latencies),
        "duplicates": stats["requests"] - stats["unique"] + stats["repeated_tags"],
        "refused_signatures": refused_signatures(stats),
        "latency_ms": percentiles(latencies),
        "late": lateness(timed),
        "ingest_answer_ms": percentiles(run.ingest_ms),
        "publisher_lag_ms": percentiles(run.lag_ms),
        "cpu_ms_per_event": {name: round(seconds * 1000 / max(events, 1), 3) for name, seconds in cpu_s.items()},
        "cores_used": {name: round(seconds / window, 2) for name, seconds in cpu_s.items()}
        | {"whole_machine": round((machine_busy_seconds() - busy_before) / window, 2)},
        "window_s": round(window, 2),
        "peak_rss_mb": rss.peaks_mb(),
        "load_average_before": round(load, 2),
        "python_reference_ms": reference_ms,
        "wake_reference_us": wake.us_per_round_trip(),
    } | probed


def _probed(folder: Path, start: float, end: float) -> dict[str, Any]:
    """`bench.load_probe`'s summary of the window, once its processes have written it out."""
    time.sleep(PROBE_DUMP_WAIT_S)
    return {"probe": summarise(read_records(folder), start, end)}


def lateness(timed: list[tuple[float, float]]) -> dict[str, float]:
    """How often the tail happens: the share of events later than `LATE_MS`, and in how many of the run's seconds
    (by scheduled send time) any was, so that a p99 from one stall reads apart from one spread over the run."""
    if not timed:
        return {}
    start = min(at for at, _latency in timed)
    late = [at for at, latency in timed if latency > LATE_MS]
    seconds = {int(at - start) for at in late}
    return {"over_ms": LATE_MS, "share_percent": round(100 * len(late) / len(timed), 2), "seconds": len(seconds)}


def _warm_up(stack: Stack, sequence: Sequence) -> None:
    """Publish a little and wait for it, so start-up costs (imports, connections, caches) stay out of the figures."""
    stack.receiver.reset()
    run = _publish(stack, WARM_UP_RATE, WARM_UP_S, 1, sequence.take(WARM_UP_RATE * WARM_UP_S))
    if not wait_for(lambda: _arrived(stack.receiver, len(run.published)), DRAIN_TIMEOUT_S, 0.1):
        raise RuntimeError("the warm-up events did not arrive")


def run_mode(backend: Backend, receiver: Receiver, mode: str, options: argparse.Namespace) -> dict[str, Any]:
    """Every rate and publishing style on one fresh configuration, lowest rate first."""
    results: dict[str, Any] = {style: {} for style in options.publishing}
    sequence = Sequence()
    with running_stack(backend, receiver, mode) as stack:
        _warm_up(stack, sequence)
        for rate in options.rates:
            for style in options.publishing:
                label = f"{backend.name} {mode} {style} {rate}/s"
                print(f"-- {label}", file=sys.stderr, flush=True)
                profile = options.profile / label.replace(" ", "-").replace("/", "") if options.profile else None
                result = measure(stack, rate, options.seconds, PUBLISHING[style], sequence, profile, options.probe)
                print(f"   {orjson.dumps(result).decode()}", file=sys.stderr, flush=True)
                results[style][str(rate)] = result
    return results


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20, help="how long each rate is offered")
    parser.add_argument("--rates", default=",".join(map(str, RATES)), help="events/s, comma-separated")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--modes", default=",".join(MODES), help="serve (API with its worker), worker (API + 1)")
    parser.add_argument("--publishing", default=",".join(PUBLISHING), help="single, batch10")
    parser.add_argument("--passes", type=int, default=PASSES, help="how many times the whole run is made")
    parser.add_argument("--no-save", action="store_true", help="print the results; leave bench/results alone")
    parser.add_argument(
        "--profile", type=Path, help="a folder for py-spy profiles of each measure (bench.profile_summary)"
    )
    parser.add_argument(
        "--probe", type=Path, help="a folder for bench.load_probe's records: loop lag, GC, SQLite's writer, hand-off"
    )
    options = parser.parse_args()
    for folder in (options.profile, options.probe):
        if folder:
            folder.mkdir(parents=True, exist_ok=True)
    if options.passes < 1:
        parser.error("--passes: at least 1")
    options.rates = [int(rate) for rate in options.rates.split(",")]
    options.backends = options.backends.split(",")
    options.modes = options.modes.split(",")
    options.publishing = options.publishing.split(",")
    for name, allowed in (("modes", MODES), ("publishing", PUBLISHING), ("backends", ("sqlite", "postgresql"))):
        unknown = set(getattr(options, name)) - set(allowed)
        if unknown:
            parser.error(f"--{name}: unknown {', '.join(sorted(unknown))}")
    return options


def _probe_started_processes(folder: Path) -> None:
    """Have every `chargewire serve` and `worker` started from now on load `bench.load_probe` (bench/probe)."""
    os.environ[PROBE_FOLDER_ENV] = str(folder.resolve())
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROBE_PATH), os.environ.get("PYTHONPATH")]))


def run_pass(options: argparse.Namespace, number: int) -> dict[str, Any]:
    """Every backend and mode once, each on fresh processes and a fresh database."""
    print(f"-- pass {number} of {options.passes}", file=sys.stderr, flush=True)
    results: dict[str, Any] = {}
    for name in options.backends:
        with open_backend(name) as backend, running_signing_receiver() as receiver:
            results[name] = {mode: run_mode(backend, receiver, mode, options) for mode in options.modes}
    return results


def main() -> None:
    """Run every configuration and write bench/results/load.json and bench/results/load.svg."""
    options = _parse_args()
    if options.probe:
        _probe_started_processes(options.probe)
    results = combined_results([run_pass(options, number) for number in range(1, options.passes + 1)])
    summary = {
        "payload_bytes": PAYLOAD_BYTES,
        "event": EVENT_NAME,
        "subscriptions": 1,
        "passes": options.passes,
        "load_average_after": round(os.getloadavg()[0], 2),
        "results": results,
    }
    if not (options.no_save or options.profile or options.probe):
        write_result("load", summary)
        write_plot(results)
    print(markdown_table(results))


if __name__ == "__main__":
    main()
