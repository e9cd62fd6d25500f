"""Broker faults for ordering tests (issue 24), and the check that every key's first arrivals keep publishing order.

The kill and the freeze first freeze the broker (SIGSTOP), so that what is in flight at that moment stays
unanswered, then either kill it and start it again, or let it go on (SIGCONT). Both last longer than the
message timeout the tests set, so records fail by timeout as well as by lost connections. The cut aborts every
client connection to the broker, and every new one, for a fraction of a second (`ss -K`: needs root).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Protocol

import orjson

from chargewire.catalog import load_event_types
from chargewire.devtools.kafka_broker import KafkaBroker

MESSAGE_TIMEOUT_S = 2.0
OUTAGE_S = MESSAGE_TIMEOUT_S + 1.0
# Longer than the outage and the restart, so the failed records' jittered retry times straddle the recovery.
RETRY_S = 8.0
IN_FLIGHT_S = 0.5
CUT_S = 1.0
KEYS = 40
BURST = 1000
STEADY_BATCH = 33  # every STEADY_EVERY_S: about 330 events/s
STEADY_EVERY_S = 0.1
PARTITIONS = 6
_METER = load_event_types()["SessionMeterValuesNotification"].example


def meter_values(first: int, count: int) -> list[dict[str, object]]:
    """Events `first` to `first + count - 1` over `KEYS` sessions (the record keys); `evseId` is each one's place."""
    return [{**_METER, "sessionId": n % KEYS, "evseId": n} for n in range(first, first + count)]


def kill_for_longer_than_the_message_timeout(broker: KafkaBroker) -> None:
    """SIGKILL the broker (frozen first, with what is in flight), and start it again after `OUTAGE_S`."""
    pid = freeze(broker)
    time.sleep(IN_FLIGHT_S)
    os.kill(pid, signal.SIGKILL)
    time.sleep(OUTAGE_S)
    broker.start()


def freeze_for_longer_than_the_message_timeout(broker: KafkaBroker) -> None:
    """SIGSTOP the broker for `OUTAGE_S`: connections stay open and nothing is answered."""
    pid = freeze(broker)
    try:
        time.sleep(OUTAGE_S)
    finally:
        os.kill(pid, signal.SIGCONT)


def cut_connections_briefly(broker: KafkaBroker) -> None:
    """Abort every connection to the broker's PLAINTEXT listener, and each new one, for `CUT_S`."""
    port = broker.ports["PLAINTEXT"]
    deadline = time.monotonic() + CUT_S
    while time.monotonic() < deadline:
        subprocess.run(["ss", "-K", "dst", "127.0.0.1", "dport", "=", f":{port}"], capture_output=True, check=True)
        time.sleep(0.01)


FAULTS: dict[str, Callable[[KafkaBroker], None]] = {
    "killed": kill_for_longer_than_the_message_timeout,
    "frozen": freeze_for_longer_than_the_message_timeout,
    "cut": cut_connections_briefly,
}


class Node(Protocol):
    """A Kafka node process: a `KafkaBroker` or a `JoinedBroker`."""

    @property
    def pid(self) -> int | None:
        """Its process id while it runs."""
        ...


def freeze(node: Node) -> int:
    """Freeze the node (SIGSTOP): what is in flight to it stays unanswered. Returns its process id."""
    pid = node.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    return pid


def overtaken(records: Sequence[tuple[bytes, bytes]], place: str = "evseId") -> dict[str, int]:
    """Per key that broke publishing order, how many of its first arrivals came after a later-published event.

    `place` names the payload field that holds each event's place in publishing order.
    """
    places: dict[bytes, list[int]] = defaultdict(list)
    for key, value in records:
        places[key].append(orjson.loads(value)[place])
    late_by_key: dict[str, int] = {}
    for key, seen in places.items():
        late, newest = 0, -1
        for arrival in dict.fromkeys(seen):
            late += arrival < newest
            newest = max(newest, arrival)
        if late:
            late_by_key[key.decode()] = late
    return late_by_key
