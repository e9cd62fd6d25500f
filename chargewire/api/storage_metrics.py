"""Storage as Prometheus gauges: each table's (and partition's) size, rows and oldest row, and the last expiry run.

The figures are those the last expiry run measured (`services.storage`), so a scrape reads one row: measuring
a SQLite file reads all of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from chargewire.services.storage import ExpiryRun


class StorageCollector(Collector):
    """Gauges of the last expiry run; nothing when the database could not be read (`run` None)."""

    def __init__(self, run: ExpiryRun | None) -> None:
        self._run = run

    def collect(self) -> Iterator[Metric]:
        """The table gauges, then the last run's."""
        run = self._run
        if run is None or run.started_at is None or run.finished_at is None:
            return
        sizes = GaugeMetricFamily(
            "chargewire_table_bytes",
            "Bytes on disk of each table or partition, indexes included.",
            labels=["table", "partition"],
        )
        rows = GaugeMetricFamily(
            "chargewire_table_rows",
            "Rows of each table or partition (estimated on PostgreSQL).",
            labels=["table", "partition"],
        )
        oldest = GaugeMetricFamily(
            "chargewire_table_oldest_row_timestamp_seconds",
            "When the oldest row of each history table (events, deliveries, attempts) was made.",
            labels=["table"],
        )
        dated: set[str] = set()
        for size in run.tables:
            sizes.add_metric([size.table, size.partition], size.bytes)
            if size.rows is not None:
                rows.add_metric([size.table, size.partition], size.rows)
            if size.oldest is not None and size.table not in dated:  # one per table, however many partitions
                dated.add(size.table)
                oldest.add_metric([size.table], size.oldest.timestamp())
        yield from (sizes, rows, oldest)
        yield from _last_run(run, run.finished_at, run.finished_at - run.started_at)


def _last_run(run: ExpiryRun, finished_at: datetime, took: timedelta) -> Iterator[Metric]:
    finished = GaugeMetricFamily(
        "chargewire_expiry_last_run_timestamp_seconds", "When the last expiry run (any process's) finished."
    )
    finished.add_metric([], finished_at.timestamp())
    duration = GaugeMetricFamily("chargewire_expiry_last_run_duration_seconds", "How long the last expiry run took.")
    duration.add_metric([], took.total_seconds())
    failed = GaugeMetricFamily("chargewire_expiry_last_run_failed", "1 when the last expiry run ended with an error.")
    failed.add_metric([], 0.0 if run.error is None else 1.0)
    removed = GaugeMetricFamily(
        "chargewire_expiry_last_run_removed_rows", "Rows the last expiry run removed, by table.", labels=["table"]
    )
    for table, count in run.removed.items():
        removed.add_metric([table], count)
    yield from (finished, duration, failed, removed)
