"""A steady publisher: batches of events at a bounded rate over loopback HTTP, every answer recorded."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx

from chargewire.catalog import load_event_types

EVENT_NAME = "SessionMeterValuesNotification"
_EXAMPLE = load_event_types()[EVENT_NAME].example
_TICK_S = 0.1
_REQUEST_TIMEOUT_S = 10.0
TIMED_OUT = 0  # the status recorded for a publish that got no answer in time


@dataclass(frozen=True)
class Publish:
    """One POST: when it was sent (wall clock), its status (0 = no answer), how long it took, the ids it got."""

    at: float
    status: int
    latency_s: float
    event_ids: tuple[str, ...] = ()


@dataclass
class SteadyPublisher:
    """Publishes `rate_per_s` events a second, in one batch per 100 ms tick, until stopped.

    A tick that falls behind (a slow answer during a fault) is skipped, not made up later: the rate stays
    bounded, so a recovering stack is not met by a burst the run itself made.
    """

    base_url: str
    token: str
    rate_per_s: int
    publishes: list[Publish] = field(default_factory=list)
    _halt: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Start publishing on a thread of its own."""
        self._thread = threading.Thread(target=self._run, name="chaos-publisher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the publish in progress."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join(_REQUEST_TIMEOUT_S + 5)

    def accepted(self) -> dict[str, float]:
        """Every event id answered 202, with the time its publish was sent."""
        return {event_id: publish.at for publish in self.publishes for event_id in publish.event_ids}

    def _run(self) -> None:
        per_tick = max(1, round(self.rate_per_s * _TICK_S))
        headers = {"Authorization": f"Bearer {self.token}"}
        number = 0
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=_REQUEST_TIMEOUT_S) as client:
            next_tick = time.monotonic()
            while not self._halt.is_set():
                batch = [{**_EXAMPLE, "sessionId": (number + i) % 12, "evseId": number + i} for i in range(per_tick)]
                number += per_tick
                self.publishes.append(_post(client, batch))
                next_tick = max(next_tick + _TICK_S, time.monotonic())
                self._halt.wait(max(0.0, next_tick - time.monotonic()))


def _post(client: httpx.Client, batch: list[dict[str, object]]) -> Publish:
    sent_at, started = time.time(), time.monotonic()
    try:
        response = client.post("/api/v1/events", json=batch)
    except httpx.HTTPError:
        return Publish(sent_at, TIMED_OUT, time.monotonic() - started)
    ids = tuple(response.json()["data"]) if response.status_code == 202 else ()
    return Publish(sent_at, response.status_code, time.monotonic() - started, ids)
