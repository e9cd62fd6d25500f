"""The demo's live table: deliveries by state, latency, and what the sample receiver verified."""

from __future__ import annotations

import statistics
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from chargewire.channels.base import AttemptResult
from chargewire.clock import utcnow
from chargewire.demo.sample_receiver import ReceiverStats
from chargewire.models import DeliveryStatus
from chargewire.store.delivery_records import AttemptRecord, ClaimedDelivery

_WINDOW = 2000


class LatencyWindow:
    """Publish-to-delivery latency of the most recent successful deliveries, and how many this run delivered
    (a dispatcher listener)."""

    def __init__(self) -> None:
        self._seconds: deque[float] = deque(maxlen=_WINDOW)
        # Counted here, not in the database: the queue depth reads only the work left, never delivered rows.
        self.delivered = 0

    def observe(
        self, deliveries: Sequence[ClaimedDelivery], _results: Sequence[AttemptResult], records: Sequence[AttemptRecord]
    ) -> None:
        """Note the latencies of the delivered attempts of one dispatch."""
        now = utcnow()
        for delivery, record in zip(deliveries, records, strict=True):
            if record.status is DeliveryStatus.DELIVERED:
                self._seconds.append((now - delivery.received_at).total_seconds())
                self.delivered += 1

    def percentiles_ms(self) -> tuple[float, float] | None:
        """(p50, p99) in milliseconds, or None before anything was delivered."""
        if len(self._seconds) < 2:
            return None
        cuts = statistics.quantiles(self._seconds, n=100)
        return cuts[49] * 1000, cuts[98] * 1000


@dataclass(frozen=True)
class Published:
    """Events published so far by each source."""

    api: int
    tap: int | None = None


def render(
    published: Published, counts: dict[str, int], latency: LatencyWindow, receiver: ReceiverStats, ocpp: str | None
) -> str:
    """The table as text; `ocpp` says what the simulated OCPP charge points have done."""
    percentiles = latency.percentiles_ms()
    latency_text = f"p50 {percentiles[0]:7.1f} ms   p99 {percentiles[1]:7.1f} ms" if percentiles else "-"
    return "\n".join(
        [
            *([f"OCPP       {ocpp}"] if ocpp else []),
            f"published  {published.api:>9}   through the API"
            + (f"   {published.tap} by the OCPP tap" if published.tap is not None else ""),
            f"delivered  {latency.delivered:>9}   latency {latency_text}",
            f"retrying   {counts.get('scheduled', 0) + counts.get('due', 0):>9}",
            f"failed     {counts.get('failed', 0):>9}",
            f"receiver   {receiver.verified:>9} verified   {receiver.rejected} bad signatures   "
            f"{receiver.refused_on_purpose} refused on purpose (to show retries)",
        ]
    )


class Screen:
    """Redraws the table in place on a terminal; prints it as a block otherwise."""

    def __init__(self) -> None:
        self._lines = 0
        self._tty = sys.stdout.isatty()

    def show(self, text: str) -> None:
        """Replace the previous table with `text`."""
        if self._tty and self._lines:
            sys.stdout.write(f"\x1b[{self._lines}F\x1b[J")
        sys.stdout.write(text + "\n" + ("" if self._tty else "\n"))
        sys.stdout.flush()
        self._lines = text.count("\n") + 1
