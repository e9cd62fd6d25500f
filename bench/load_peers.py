"""The load benchmark's peers in Go (`bench/loadpeers`): the open-loop publisher and the receiver.

Python peers cost about 1 ms of CPU per event on the two cores chargewire is measured on (at 2,000 events/s,
two fifths of the machine), so they competed with what they measured and paced their sends loosely. Each Go
peer runs as its own process, so its CPU is counted apart from chargewire's and from the other's. Both stamp
times on CLOCK_MONOTONIC, one clock for every process on Linux and the one `time.monotonic` reads: a scheduled
send time of the publisher and an arrival time of the receiver subtract directly. `make bench-load` builds the
binary; the receiver verifies both signatures of every webhook with the receiver kit (clients/go).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from bench.paced import PacedRun
from bench.receiver import REPO, Receiver, running_receiver

PEERS = REPO / "bench" / "loadpeers" / "bin" / "loadpeers"
# How far the receiver's clock may read from this process's: a clock that is not the same shows seconds or more.
CLOCK_AGREEMENT_S = 0.05


@dataclass
class PublisherRun(PacedRun):
    """A `PacedRun` of the Go publisher, with the CPU it spent from its first scheduled send to its last answer."""

    cpu_s: float = 0.0


def _binary() -> str:
    if not PEERS.exists():
        raise FileNotFoundError(f"{PEERS} is missing: `make bench-load` builds it (go build in bench/loadpeers)")
    return str(PEERS)


def publish(
    base_url: str, token: str, rate: int, seconds: float, batch: int, first: int, fields: dict[str, Any]
) -> PublisherRun:
    """Publish `rate` events/s for `seconds`, `batch` per POST on a fixed clock, numbered from `first`.

    Each event is `fields` with `sessionId` and `externalSessionId` (its latency tag, `lat-<number>`) added.
    """
    plan = {
        "url": base_url,
        "token": token,
        "rate": rate,
        "seconds": seconds,
        "batch": batch,
        "first": first,
        "template": orjson.dumps(fields).decode(),
    }
    arguments = [f"-{name}={value}" for name, value in plan.items()]
    finished = subprocess.run([_binary(), "publish", *arguments], stdout=subprocess.PIPE, check=True)
    return PublisherRun(**orjson.loads(finished.stdout))


@contextmanager
def running_signing_receiver() -> Iterator[Receiver]:
    """The Go receiver on a free port, its clock checked against this process's."""
    with running_receiver([_binary(), "receive"]) as receiver:
        apart = abs(float(receiver.stats()["now"]) - time.monotonic())
        if apart > CLOCK_AGREEMENT_S:
            raise RuntimeError(f"the receiver's monotonic clock is {apart:.3f} s from this process's")
        yield receiver


def check_signatures(receiver: Receiver, signing_secret: str, api_token: str) -> None:
    """Give the receiver the keys of the subscription it now serves (its `whsec_` secret and creating token)."""
    keys = {"signingSecret": signing_secret, "apiToken": api_token}
    httpx.post(receiver.url("/_keys"), json=keys, timeout=10).raise_for_status()


def refused_signatures(stats: dict[str, Any]) -> int:
    """How many webhooks since the last reset carried signatures that did not verify (or came before the keys)."""
    return sum(stats["refused"].values())
