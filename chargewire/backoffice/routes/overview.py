"""The overview: deliveries per minute by outcome, latency, queue depth, failing subscriptions and workers, live.

The page draws its charts from `/backoffice/api/overview`, which it polls every few seconds.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from chargewire.backoffice.guards import Operator, runtime_of
from chargewire.backoffice.rendering import SECURITY_HEADERS, iso, render, target_name
from chargewire.models import Subscription
from chargewire.services.overview import Overview
from chargewire.services.storage import ExpiryRun

router = APIRouter()
POLL_INTERVAL_S = 5


def overview_json(overview: Overview) -> dict[str, Any]:
    """The overview as the page's script reads it."""
    return {
        "generatedAt": iso(overview.generated_at),
        "windowMinutes": overview.window_minutes,
        "pollSeconds": POLL_INTERVAL_S,
        "minutes": [
            {"minute": iso(point.minute), **point.counts, "p50": point.p50_s, "p99": point.p99_s}
            for point in overview.minutes
        ],
        "p50": overview.p50_s,
        "p99": overview.p99_s,
        "queue": overview.queue.counts,
        "queueHistory": [{"at": iso(sample.at), **sample.counts} for sample in overview.queue_history],
        "failing": [
            {
                "id": item.subscription.id,
                "via": str(item.subscription.via),
                "target": _target(item.subscription),
                "enabled": item.subscription.enabled,
                "failures": item.failures,
                "lastFailureAt": iso(item.last_failure_at),
            }
            for item in overview.failing
        ],
        "workers": [
            {
                "id": worker.heartbeat.worker_id,
                "where": f"{worker.heartbeat.host} (pid {worker.heartbeat.pid})",
                "state": worker.state,
                "ageSeconds": round(worker.age_s, 1),
                "tasks": dict(worker.heartbeat.tasks),
                "lastError": worker.heartbeat.last_error,
                "lastErrorAt": iso(worker.heartbeat.last_error_at) if worker.heartbeat.last_error_at else None,
            }
            for worker in overview.workers
        ],
        "oldestDueSeconds": overview.oldest_due_age_s,
        "storage": None if overview.storage is None else _storage_json(overview.storage),
        "databaseError": overview.database_error,
    }


def _storage_json(run: ExpiryRun) -> dict[str, Any]:
    return {
        "lastRunAt": iso(run.started_at) if run.started_at else None,
        "finishedAt": iso(run.finished_at) if run.finished_at else None,
        "removed": run.removed,
        "error": run.error,
        "tables": [
            {
                "table": size.table,
                "partition": size.partition,
                "bytes": size.bytes,
                "rows": size.rows,
                "oldest": iso(size.oldest) if size.oldest else None,
            }
            for size in run.tables
        ],
    }


def _target(subscription: Subscription) -> str:
    if subscription.kafka is not None:
        return f"{subscription.kafka.topic} @ {', '.join(subscription.kafka.brokers)}"
    return target_name(subscription)


@router.get("/overview")
async def overview_page(request: Request, _: Operator) -> Response:
    """The page; its numbers are filled in now and kept current by the script."""
    overview = await runtime_of(request).overview.snapshot()
    last = overview.minutes[-1].counts if overview.minutes else {}
    return render(request, "overview.html", overview=overview, last_minute=last, poll_s=POLL_INTERVAL_S)


@router.get("/api/overview")
async def overview_data(request: Request, _: Operator) -> JSONResponse:
    """The overview's figures as JSON."""
    overview = await runtime_of(request).overview.snapshot()
    return JSONResponse(overview_json(overview), headers={"Cache-Control": SECURITY_HEADERS["Cache-Control"]})
