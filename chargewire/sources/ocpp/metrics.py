"""Prometheus metrics of the OCPP tap, counted in plain numbers on the event loop and read when rendered."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)


class TapMetrics(Collector):
    """Frames forwarded, bad input by charge point and reason, events published, delayed and dropped."""

    def __init__(self) -> None:
        self.frames: dict[str, int] = {}
        self.bad_input: dict[tuple[str, str], int] = {}
        self.events_published = 0
        self.events_dropped: dict[str, int] = {}
        self.publish_failures = 0
        self.registry_failures = 0
        self.connections = 0
        self.queue_depth: Callable[[], int] = lambda: 0

    def forwarded(self, direction: str) -> None:
        """Count one frame forwarded from `direction`."""
        self.frames[direction] = self.frames.get(direction, 0) + 1

    def reject(self, identity: str, reason: str) -> None:
        """Count input that causes no event; the first of each charge point and reason is logged, without payload."""
        key = (identity, reason)
        count = self.bad_input.get(key, 0)
        if count == 0:
            logger.warning("charge point %s: %s (forwarded, no event; counted from now on)", identity, reason)
        self.bad_input[key] = count + 1

    def dropped(self, reason: str, count: int = 1) -> None:
        """Count events (or observations) lost before publishing."""
        self.events_dropped[reason] = self.events_dropped.get(reason, 0) + count

    def collect(self) -> Iterator[Metric]:
        """The tap's counters and gauges."""
        frames = CounterMetricFamily("chargewire_ocpp_frames", "OCPP frames forwarded, by sender.", labels=["sender"])
        for direction, count in self.frames.items():
            frames.add_metric([direction], count)
        bad = CounterMetricFamily(
            "chargewire_ocpp_rejected_input",
            "Frames forwarded that caused no event because they were not valid, by charge point and reason.",
            labels=["charge_point", "reason"],
        )
        for (identity, reason), count in self.bad_input.items():
            bad.add_metric([identity, reason], count)
        dropped = CounterMetricFamily(
            "chargewire_ocpp_events_dropped", "Events lost before publishing, by reason.", labels=["reason"]
        )
        for reason, count in self.events_dropped.items():
            dropped.add_metric([reason], count)
        yield from (frames, bad, dropped)
        yield CounterMetricFamily("chargewire_ocpp_events_published", "Events published.", value=self.events_published)
        yield CounterMetricFamily(
            "chargewire_ocpp_publish_failures",
            "Publish attempts that failed and were retried.",
            value=self.publish_failures,
        )
        yield CounterMetricFamily(
            "chargewire_ocpp_registry_failures",
            "Writes to the identity registry that failed (the database unavailable) and were retried.",
            value=self.registry_failures,
        )
        yield GaugeMetricFamily(
            "chargewire_ocpp_observations_waiting",
            "Completed exchanges waiting to be turned into events (delayed while the database is slow or down).",
            value=self.queue_depth(),
        )
        yield GaugeMetricFamily("chargewire_ocpp_connections", "Charge points connected.", value=self.connections)
