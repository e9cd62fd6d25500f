"""Prometheus metrics at `/metrics`: this process's delivery and loops, and the deployment's workers.

Answered during a database outage too, from what the process knows itself, with `chargewire_database_up 0`:
the moment metrics matter most is when the database is down.
"""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from chargewire.api.auth import runtime_of, scope_bearer_hash
from chargewire.api.storage_metrics import StorageCollector
from chargewire.errors import PermissionDenied
from chargewire.models import Scope
from chargewire.services.health import Workers
from chargewire.services.storage import ExpiryRun
from chargewire.store.outage import is_unavailable

router = APIRouter(tags=["operations"])

_WORKER_STATES = ("alive", "stale", "stopped")


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Deliveries by outcome, attempt duration, publish-to-delivery latency, queue depth, loop faults and states,
    workers by state, the age of the oldest due delivery, table sizes and the last expiry run."""
    runtime = runtime_of(request)
    if not runtime.settings.metrics_public:
        # Queue depths and failure counts describe every tenant's traffic: not for anyone who can reach the port.
        token = await runtime.tokens.authenticate_hash(scope_bearer_hash(request.scope))
        if not token.allows(Scope.METRICS_READ):
            raise PermissionDenied()
    workers: Workers | None = None
    storage: ExpiryRun | None = None
    try:
        delivery = await runtime.metrics.render(runtime.delivery_store)
        workers = await runtime.health_checks.workers()
        storage = await runtime.storage.last_run()
    except Exception as error:
        if not is_unavailable(error):
            raise
        delivery = generate_latest(runtime.metrics.registry)  # the queue depth as last read
    registry = CollectorRegistry()
    registry.register(_WorkerCollector(workers))
    registry.register(StorageCollector(storage))
    return Response(delivery + generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class _WorkerCollector(Collector):
    """The workers' heartbeats as gauges; `workers` is None when the database could not be read."""

    def __init__(self, workers: Workers | None) -> None:
        self._workers = workers

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("chargewire_database_up", "1 when the database answered this scrape, else 0.")
        up.add_metric([], 0.0 if self._workers is None else 1.0)
        yield up
        if self._workers is None:
            return
        counts = GaugeMetricFamily(
            "chargewire_workers",
            "Worker processes by state: alive (heartbeat within 10 s), stale (silent longer), stopped.",
            labels=["state"],
        )
        for state in _WORKER_STATES:
            counts.add_metric([state], self._workers.count(state))
        ages = GaugeMetricFamily(
            "chargewire_worker_heartbeat_age_seconds",
            "Seconds since each running worker's last heartbeat.",
            labels=["worker", "host", "pid"],
        )
        for worker in self._workers.workers:
            if worker.state != "stopped":
                beat = worker.heartbeat
                ages.add_metric([beat.worker_id, beat.host, str(beat.pid)], worker.age_s)
        oldest = GaugeMetricFamily(
            "chargewire_oldest_due_delivery_age_seconds",
            "How long the longest-waiting due delivery row has been due (0 when none is).",
        )
        oldest.add_metric([], self._workers.oldest_due_age_s or 0.0)
        yield from (counts, ages, oldest)
