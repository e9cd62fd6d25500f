"""Worker heartbeats and the database's own health: the one module that writes `worker_heartbeats`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, delete, func, insert, select, update

from chargewire.ids import new_id
from chargewire.models import DeliveryStatus
from chargewire.store.database import Database
from chargewire.store.tables import deliveries, worker_heartbeats

_WORKERS_SHOWN = 100


@dataclass(frozen=True, slots=True)
class WorkerHeartbeat:
    """What one worker process last said about itself."""

    worker_id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    tasks: Mapping[str, str]  # loop name -> state
    last_error: str | None = None
    last_error_at: datetime | None = None
    stopped_at: datetime | None = None


def _to_heartbeat(mapping: RowMapping) -> WorkerHeartbeat:
    return WorkerHeartbeat(
        worker_id=mapping["worker_id"],
        host=mapping["host"],
        pid=mapping["pid"],
        started_at=mapping["started_at"],
        heartbeat_at=mapping["heartbeat_at"],
        tasks=dict(mapping["tasks"] or {}),
        last_error=mapping["last_error"],
        last_error_at=mapping["last_error_at"],
        stopped_at=mapping["stopped_at"],
    )


class WorkerStore:
    """Reads and writes `worker_heartbeats`; answers the health questions asked of the database itself."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def beat(self, heartbeat: WorkerHeartbeat) -> None:
        """Store a worker's heartbeat, replacing its last one."""
        values: dict[str, Any] = {
            "host": heartbeat.host,
            "pid": heartbeat.pid,
            "started_at": heartbeat.started_at,
            "heartbeat_at": heartbeat.heartbeat_at,
            "stopped_at": heartbeat.stopped_at,
            "tasks": dict(heartbeat.tasks),
            "last_error": heartbeat.last_error,
            "last_error_at": heartbeat.last_error_at,
        }
        # An update, then an insert the first time: the same two statements on both databases, and a worker's
        # id is its own, so no other process races for the row.
        async with self._database.transaction() as connection:
            changed = await connection.execute(
                update(worker_heartbeats).where(worker_heartbeats.c.worker_id == heartbeat.worker_id).values(values)
            )
            if changed.rowcount == 0:
                await connection.execute(insert(worker_heartbeats).values(worker_id=heartbeat.worker_id, **values))

    async def recent_workers(self, since: datetime) -> Sequence[WorkerHeartbeat]:
        """Workers that beat since `since`, and those that never said they stopped, newest first."""
        query = (
            select(worker_heartbeats)
            .where((worker_heartbeats.c.heartbeat_at >= since) | worker_heartbeats.c.stopped_at.is_(None))
            .order_by(worker_heartbeats.c.heartbeat_at.desc())
            .limit(_WORKERS_SHOWN)
        )
        async with self._database.reading() as connection:
            rows = (await connection.execute(query)).all()
        return [_to_heartbeat(row._mapping) for row in rows]

    async def oldest_due_at(self, now: datetime) -> datetime | None:
        """When the longest-waiting delivery row that is due now fell due; None when none is due."""
        query = select(func.min(deliveries.c.next_attempt_at)).where(
            deliveries.c.status == DeliveryStatus.PENDING.value, deliveries.c.next_attempt_at <= now
        )
        async with self._database.reading() as connection:
            oldest: datetime | None = (await connection.execute(query)).scalar()
        return oldest

    async def probe_write(self, at: datetime) -> None:
        """Write a row and delete it in one committed transaction: proves the database takes writes now."""
        probe_id = new_id("prb")
        async with self._database.transaction() as connection:
            await connection.execute(
                insert(worker_heartbeats).values(
                    worker_id=probe_id, host="readiness probe", pid=0, started_at=at, heartbeat_at=at, tasks={}
                )
            )
            await connection.execute(delete(worker_heartbeats).where(worker_heartbeats.c.worker_id == probe_id))
